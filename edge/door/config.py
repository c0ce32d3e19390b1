"""The door unit's configuration schema: one typed dataclass per `door.toml` section, read by the one
strict loader in :mod:`facegate.edge.config` (the door, `hardware bundle` and the tests all use
:func:`load_door_config` / :func:`door_config_from_dict`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facegate.edge.config import load_section, read_toml, within
from facegate.edge.door.camera import CameraConfig
from facegate.edge.door.unit import DoorSettings
from facegate.edge.errors import ConfigError
from facegate.edge.face.pipeline import PipelineConfig


@dataclass(frozen=True)
class DoorPipelineConfig(PipelineConfig):
    """The face pipeline as a door runs it. A door looks for one person standing close to it, so by
    default it looks for a large face first with a few cheap pyramid levels (full search only when there
    is none) and searches around the last subject's face first (whole frame when it is gone). Measured:
    the same door decisions as the full search (tests/test_door.py), LFW detection unchanged, less than
    half the time per frame (docs/benchmarks.md, "Door defaults"). `threads` is the embedder's; the
    detector nets run on one thread (a second one made them slower here). `max_faces = 1` is faster still but
    keeps the highest-scoring face rather than the central one, so in a crowded frame it can decide on a
    bystander: it stays a choice, not a default. Photos (`enroll`, `verify`, evaluations) keep the full
    search of PipelineConfig."""

    fast_path_min_face: float | None = within(120.0, 12, 4000)
    roi_from_previous: bool = True
    detector_threads: int | None = within(1, 1, 64)     # measured: with the fast path a second thread only slows the small
                                         # nets down and competes with the embedder's threads


@dataclass(frozen=True)
class RelayConfig:
    kind: str = "mock"                   # 'mock' | 'gpiozero' | 'jetson'
    pin: int = within(17, 0, 1000)
    active_high: bool = True
    state_file: str | None = None        # mock relay: append every state change here (tests, demos)


@dataclass(frozen=True)
class GalleryConfig:
    path: str = "/var/lib/facegate/gallery.fgg"
    key_file: str | None = None          # else FACEGATE_GALLERY_KEY / FACEGATE_GALLERY_PASSPHRASE
    far: str = "1e-3"
    retry_far: str = "1e-2"


@dataclass(frozen=True)
class AuditConfig:
    path: str = "/var/lib/facegate/audit.jsonl"
    key_file: str | None = None          # the chain's 32-byte key (0600); default: <path>.key, created at first start
    max_bytes: int = within(10 * 1024 * 1024, 4096, 10**12)
    keep: int = within(10, 1, 1000)


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"                # anything but loopback needs token_file
    port: int = within(8080, 0, 65535)
    token_file: str | None = None        # private file with the bearer token for /status, /snapshot.jpg, /claim
    tls_cert: str | None = None          # HTTPS when both are given
    tls_key: str | None = None

    def __post_init__(self) -> None:
        from facegate.edge.door.status_http import is_loopback
        if self.enabled and not is_loopback(self.host) and not self.token_file:
            raise ValueError(f"host = {self.host!r} opens the status port to the network: set token_file "
                             "(a private file holding a long random token) or keep host = \"127.0.0.1\"")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")


@dataclass(frozen=True)
class DisplayConfig:
    mode: str = "headless"               # 'headless' or 'window' (needs opencv-python with GUI)

    def __post_init__(self) -> None:
        if self.mode not in ("headless", "window"):
            raise ValueError(f"mode must be 'headless' or 'window', not {self.mode!r}")


@dataclass(frozen=True)
class LivenessConfig:
    """Presentation attack detection at the door: an identity accept counts only on a frame the
    liveness nets call live, so the k-of-n vote needs k live frames (a photo can be lucky once)."""

    enabled: bool = True                 # false: a printed photo of a member opens the door (warned at start)
    set: str = "minifasnet-fp16"         # committed set name or a folder of liveness models with cards
    threshold: float | None = within(None, 0.001, 0.999)  # default: the set's card; a camera's own from
                                                          # `facegate calibrate liveness`
    mode: str = "passive"                # 'passive', or 'challenge': after the accept, turn the head both ways
    challenge_s: float = within(8.0, 2, 60)              # time to follow both prompts
    turn_yaw: float = within(0.25, 0.1, 1.0)             # |yaw| (nose offset / eye distance) that counts as a turn

    def __post_init__(self) -> None:
        if self.mode not in ("passive", "challenge"):
            raise ValueError(f"mode must be 'passive' or 'challenge', not {self.mode!r}")


@dataclass(frozen=True)
class FleetConfig:
    """Joining a site (`facegate door register` wrote the credentials): the door loop takes signed remote
    commands from the sync agent's spool; `facegate door sync` reads the same section."""

    credentials: str | None = None       # fleet.json from `door register`; None: a stand-alone door
    state_dir: str | None = None         # the sync agent's state (outbox pointer, gallery version, command
                                         # spool); default: <audit log folder>/fleet-state

    def state_path(self, audit_path: str | Path) -> Path:
        return Path(self.state_dir) if self.state_dir else Path(audit_path).with_name("fleet-state")


@dataclass(frozen=True)
class DoorConfig:
    """All of `door.toml`: every section optional, every key optional, nothing unknown."""

    door: DoorSettings = field(default_factory=DoorSettings)
    camera: CameraConfig = field(default_factory=CameraConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    pipeline: DoorPipelineConfig = field(default_factory=DoorPipelineConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)


def door_config_from_dict(doc: dict[str, Any]) -> DoorConfig:
    """A checked DoorConfig from parsed TOML (ConfigError, exit 2, naming the section and key)."""
    return load_section(DoorConfig, doc)


def load_door_config(path: str | Path) -> DoorConfig:
    doc = read_toml(path)
    try:
        return door_config_from_dict(doc)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
