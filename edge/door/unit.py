"""The door loop: camera -> detect (every N frames) -> track -> quality -> embed (when the view
improves) -> match -> k-of-n policy -> relay + audit, with a status snapshot for the kiosk.

Fail-secure by construction: the relay is locked when the loop starts, after every open pulse,
on any exception (re-raised after locking), on every catchable termination signal (STOP_SIGNALS), and
at exit. The clock is
injectable so tests replay recorded frames at a known frame rate.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facegate.edge.config import within
from facegate.edge.detect.face import pick_face
from facegate.edge.door.audit import AuditLog
from facegate.edge.door.challenge import HeadTurnChallenge
from facegate.edge.door.overlay import draw_overlay
from facegate.edge.door.policy import DoorEvent, DoorPolicy, PolicyConfig
from facegate.edge.door.relay import DoorLock, make_relay
from facegate.edge.door.sdnotify import notify, watchdog_interval
from facegate.edge.door.tracking import IoUTracker, view_quality
from facegate.edge.durable import atomic_write
from facegate.edge.errors import AuditError, FacegateError, ModelError, PersonNotFoundError
from facegate.edge.face.liveness import LivenessChecker, refused_as_attack
from facegate.edge.face.pipeline import Pipeline
from facegate.edge.gallery import GalleryStore, KeySource, ModelBinding
from facegate.edge.gallery.matching import Decision, Matcher, MatchResult, gallery_thresholds
from facegate.edge.registry import load_liveness

if TYPE_CHECKING:  # the schema imports DoorSettings from here
    from facegate.edge.door.config import DoorConfig

log = logging.getLogger(__name__)
#: every catchable signal that ends the process by default: each locks the door before anything else
#: (SIGABRT is systemd's watchdog signal, named in the unit file; SIGKILL and power loss are the
#: wiring's job: a de-energised relay is a locked door, hardware/WIRING.md)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGABRT, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGALRM)
#: claims (badge / PIN) accepted per window; more are refused and recorded once
CLAIMS_PER_WINDOW = 5
CLAIM_WINDOW_S = 30.0
MAX_BADGE_CHARS = 128


@dataclass(frozen=True)
class DoorSettings:
    mode: str = "identify"          # 'identify' (1:N) or 'claim' (1:1 against a badge / PIN)
    id: str = ""                    # the door's name in its audit log (default: the host name)
    detect_every: int = within(2, 1, 100)
    door_group: str | None = None
    pulse_seconds: float = within(3.0, 0.1, 600)
    claim_timeout_s: float = within(15.0, 1, 3600)
    require_quality: bool = True
    policy: PolicyConfig = field(default_factory=PolicyConfig)

    def __post_init__(self) -> None:
        if self.mode not in ("identify", "claim"):
            raise ValueError(f"door mode must be 'identify' or 'claim', not {self.mode!r}")
        if self.detect_every < 1:
            raise ValueError("detect_every must be >= 1")


@dataclass(frozen=True)
class ChallengeSettings:
    turn_yaw: float = 0.25
    time_s: float = 8.0


@dataclass
class FrameOutcome:
    index: int
    faces: int
    result: MatchResult | None
    event: DoorEvent | None
    door_open: bool


GALLERY_CHECK_S = 1.0


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class RemoteCommands:
    """What the door loop needs to take signed commands from its site: the spool the sync agent fills,
    the site's pinned public key and names, and the lockdown state (a file: it survives a restart)."""

    def __init__(self, state_dir: Path, public_key: str, site: str, door: str, challenge: ChallengeSettings) -> None:
        from facegate.edge.fleet.commands import CommandSpool
        self.spool = CommandSpool(Path(state_dir) / "commands")
        self.public_key, self.site, self.door, self.challenge = public_key, site, door, challenge
        self.state_dir = Path(state_dir)
        self._lockdown_file = Path(state_dir) / "lockdown"

    def lockdown_on(self) -> bool:
        return self._lockdown_file.exists()

    def publish_state(self, **state) -> None:
        """What the door runs now (liveness mode, lockdown), for the agent's heartbeat to report."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_dir / "door-state.json", json.dumps(state, sort_keys=True).encode())

    def set_lockdown(self, on: bool) -> None:
        if on:
            self._lockdown_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self._lockdown_file, b"lockdown\n")
        else:
            self._lockdown_file.unlink(missing_ok=True)


class DoorApp:
    def __init__(self, settings: DoorSettings, pipeline: Pipeline, matcher: Matcher, lock: DoorLock,
                 audit: AuditLog, clock: Callable[[], float] = time.monotonic,
                 liveness: LivenessChecker | None = None, challenge: ChallengeSettings | None = None,
                 gallery_store: GalleryStore | None = None, remote: "RemoteCommands | None" = None) -> None:
        self.settings = settings
        self.remote = remote              # signed commands from the site, spooled by the sync agent
        self.far = ("1e-3", "1e-2")       # the card FARs the thresholds come from (a model switch re-reads them)
        self._remote_checked = 0.0
        self.lockdown = remote.lockdown_on() if remote is not None else False
        # the gallery file the door re-reads when the fleet agent swaps in a new snapshot (atomic rename)
        self._gallery_store = gallery_store
        self._gallery_stamp = _file_stamp(gallery_store.path) if gallery_store is not None else None
        self._gallery_checked = 0.0
        if liveness is not None:          # the caller's pipeline stays as it was (tests share one)
            pipeline = Pipeline(pipeline.detector, pipeline.embedder, pipeline.config, liveness)
        self.challenge = challenge
        self._challenge: tuple[DoorEvent, HeadTurnChallenge, int] | None = None   # accept waiting, challenge, track
        self.pipeline = pipeline
        self.matcher = matcher
        self.lock = lock
        self.audit = audit
        self.clock = clock
        self.policy = DoorPolicy(settings.policy)
        self.tracker = IoUTracker(max_age=3 * settings.detect_every)
        self.frame_index = -1
        self._stop = threading.Event()
        self._claim: tuple[str | None, float] | None = None
        self._subject_track: int | None = None
        self._roi_face = None   # last subject face: where to look first when roi_from_previous is on
        self.status: dict = {"door": "locked", "frames": 0, "last_event": None, "started": time.time(),
                             "fault": None}
        self._claim_times: deque[float] = deque()
        self._claims_throttled = False
        self.snapshot: bytes | None = None
        self._snapshot_lock = threading.Lock()

    @property
    def liveness(self) -> LivenessChecker | None:
        """The pipeline's liveness stage (None: disabled for this door)."""
        return self.pipeline.liveness

    @classmethod
    def from_config(cls, cfg: DoorConfig) -> "DoorApp":
        """The door unit a checked `door.toml` describes: pipeline, gallery (bound to the pipeline's
        embedder), thresholds from the embedder's card, relay, audit log."""
        liveness = None
        if cfg.liveness.enabled:
            liveness = load_liveness(cfg.liveness.set, threshold=cfg.liveness.threshold,
                                     threads=cfg.pipeline.threads)
        else:
            log.warning("liveness is disabled for this door ([liveness] enabled = false): a printed photo or a "
                        "phone showing an enrolled face will open it")
        pipeline_cfg = cfg.pipeline
        key = KeySource.from_keyfile(cfg.gallery.key_file) if cfg.gallery.key_file else KeySource.from_env()
        store = GalleryStore(cfg.gallery.path, key)
        if cfg.fleet.credentials and store.exists():     # after a rollout the gallery names the model to run
            from facegate.edge.fleet.models import installed
            moved = installed(cfg.fleet.state_path(cfg.audit.path) / "models", store.header()["model"]["sha256"])
            if moved is not None:
                pipeline_cfg = replace(pipeline_cfg, embedder=str(moved))
        pipeline = Pipeline.from_config(pipeline_cfg, liveness=liveness)
        gallery = store.load(expect=ModelBinding.for_embedder(pipeline.embedder))
        accept, retry = gallery_thresholds(gallery, pipeline.embedder.card.thresholds, cfg.gallery.far,
                                           cfg.gallery.retry_far)
        relay = make_relay(cfg.relay.kind, cfg.relay.pin, cfg.relay.active_high, cfg.relay.state_file)
        lock = DoorLock(relay, cfg.door.pulse_seconds)
        audit = AuditLog(cfg.audit.path, door_id=cfg.door.id or None, max_bytes=cfg.audit.max_bytes, keep=cfg.audit.keep,
                         key_file=cfg.audit.key_file)
        challenge = (ChallengeSettings(cfg.liveness.turn_yaw, cfg.liveness.challenge_s)
                     if cfg.liveness.mode == "challenge" else None)
        remote = None
        if cfg.fleet.credentials:
            from facegate.edge.fleet.agent import FleetCredentials
            creds = FleetCredentials.load(Path(cfg.fleet.credentials))
            remote = RemoteCommands(cfg.fleet.state_path(cfg.audit.path), creds.site_public_key, creds.site_id,
                                    creds.door_id, ChallengeSettings(cfg.liveness.turn_yaw, cfg.liveness.challenge_s))
        app = cls(cfg.door, pipeline, Matcher(gallery, accept, retry), lock, audit, challenge=challenge,
                  gallery_store=store, remote=remote)
        app.far = (cfg.gallery.far, cfg.gallery.retry_far)
        return app

    def apply_remote_commands(self, now: float) -> int:
        """Verify and carry out the spooled site commands (at most once a second); how many were applied.
        Every command, applied or refused, is audited; an unlock opens only after its entry is durable."""
        if self.remote is None or now - self._remote_checked < GALLERY_CHECK_S:
            return 0
        self._remote_checked = now
        from facegate.edge.fleet import commands
        applied = 0
        seen = self.remote.spool.load_seen()
        for path, raw in self.remote.spool.take():
            try:
                command = commands.verify(json.loads(raw), self.remote.public_key, self.remote.site, self.remote.door, seen)
            except (ValueError, commands.CommandRefused) as exc:
                self._record("command_refused", reason=str(exc)[:200])
                log.warning("remote command refused: %s", exc)
            else:
                self.remote.spool.save_seen(seen)          # before acting: a crash now cannot replay it
                applied += self._apply(command, now)
            path.unlink(missing_ok=True)
        return applied

    def _apply(self, command: dict, now: float) -> int:
        action, fields = command["action"], {"command": command["id"], "actor": str(command.get("actor"))[:64]}
        if action == "unlock":
            if self._record("remote_unlock", **fields):      # fail-secure: no entry, no opening
                self.lock.open_for(self.settings.pulse_seconds, now)
                return 1
            return 0
        if action in ("lockdown", "release"):
            self.lockdown = action == "lockdown"
            self.remote.set_lockdown(self.lockdown)
            self.status["lockdown"] = self.lockdown
            self._record(action, **fields)
        else:
            self.challenge = self.remote.challenge if command["mode"] == "challenge" else None
            self._challenge = None
            self.status["liveness_mode"] = command["mode"]
            self._record("liveness_mode", mode=command["mode"], **fields)
        self.remote.publish_state(liveness_mode=self.liveness_mode, lockdown=self.lockdown)
        return 1

    @property
    def liveness_mode(self) -> str:
        """'off', 'passive' or 'challenge': what this door checks now (a site command can change it)."""
        if self.challenge is not None:
            return "challenge"
        return "passive" if self.liveness is not None else "off"

    def reload_gallery_if_changed(self, now: float) -> bool:
        """Swap in the gallery file if it was replaced (at most once a second): the fleet agent renames a
        verified snapshot over it, and the door goes on deciding with the new people from the next frame.
        A file that does not open (it never should: the agent checked it) leaves the current one in use."""
        if self._gallery_store is None or now - self._gallery_checked < GALLERY_CHECK_S:
            return False
        self._gallery_checked = now
        stamp = _file_stamp(self._gallery_store.path)
        if stamp == self._gallery_stamp or stamp is None:
            return False
        self._gallery_stamp = stamp
        try:
            model = self._gallery_store.header()["model"]
            if model["sha256"] != self.matcher.gallery.binding.sha256:
                return self._switch_model(model)             # a rollout: embedder and gallery change together
            gallery = self._gallery_store.load(expect=self.matcher.gallery.binding)
        except FacegateError as exc:
            log.error("the new gallery file does not open (%s); the door keeps the one in use", exc)
            self._record("gallery_reload_failed", reason=str(exc)[:200])
            return False
        # a gallery converted to PCA-reduced templates (or back) brings other thresholds
        accept, retry = gallery_thresholds(gallery, self.pipeline.embedder.card.thresholds, *self.far)
        self.matcher = Matcher(gallery, accept, retry, self.matcher.margin)
        self._record("gallery_reload", generation=int(self._gallery_store.header().get("generation", 0)),
                     people=len(gallery.people), templates=int(len(gallery.templates)))
        log.info("gallery reloaded: %d people", len(gallery.people))
        return True

    def _switch_model(self, model: dict) -> bool:
        """The new gallery belongs to another model (a site rollout): load that model from the bundles the
        agent installed, and swap embedder, thresholds and gallery at once; without it, keep everything."""
        from facegate.edge.fleet.models import installed
        from facegate.edge.registry import get_embedder
        path = installed(self.remote.state_dir / "models", model["sha256"]) if self.remote is not None else None
        if path is None:
            raise ModelError(f"the new gallery is for model {model.get('name')}, which is not installed on this door")
        config = self.pipeline.config
        embedder = get_embedder(path, threads=config.threads, backend=config.backend)
        binding = ModelBinding.for_embedder(embedder)
        gallery = self._gallery_store.load(expect=binding)
        accept, retry = gallery_thresholds(gallery, embedder.card.thresholds, *self.far)
        self.pipeline = Pipeline(self.pipeline.detector, embedder, config, self.pipeline.liveness)
        self.matcher = Matcher(gallery, accept, retry, self.matcher.margin)
        self._record("model_switch", model=binding.name, sha256=binding.sha256[:16], people=len(gallery.people),
                     generation=int(self._gallery_store.header().get("generation", 0)))
        log.info("moved to model %s with %d people", binding.name, len(gallery.people))
        return True

    # -- inputs ---------------------------------------------------------------------------------
    def claim(self, badge: str) -> str:
        """Claimed-identity mode: the next face is verified against this person (badge/PIN/name).

        The answer never says whether the badge exists ("received" either way: a keypad or the HTTP port
        is not an enrolment oracle); an unknown badge is verified against nobody, so the face is refused
        like any wrong one. Claims are rate limited ("rate_limited"), and a claim does not clear the votes
        collected so far: votes only ever count for the person they matched, so a stream of claims cannot
        keep a member standing at the door out."""
        now = self.clock()
        while self._claim_times and now - self._claim_times[0] > CLAIM_WINDOW_S:
            self._claim_times.popleft()
        if len(self._claim_times) >= CLAIMS_PER_WINDOW:
            if not self._claims_throttled:
                self._record("claim_rate_limited", reason=f"more than {CLAIMS_PER_WINDOW} claims in "
                             f"{CLAIM_WINDOW_S:.0f} s")
            self._claims_throttled = True
            return "rate_limited"
        self._claims_throttled = False
        self._claim_times.append(now)
        try:
            person_id = self.matcher.gallery.find(str(badge).strip()[:MAX_BADGE_CHARS]).id
            self._record("claim", person_id=person_id)
        except PersonNotFoundError:
            person_id = None
            self._record("claim_unknown")
        self._claim = (person_id, now + self.settings.claim_timeout_s)
        return "received"

    def _record(self, event: str, **fields) -> bool:
        """Append to the audit log; on failure (disk full, read-only, damaged) keep running locked,
        raise the fault in /status and on the kiosk, and say so in the log. True if recorded."""
        try:
            self.audit.append(event, **fields)
        except (OSError, AuditError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            if self.status.get("fault") is None:
                log.error("cannot write the audit log (%s): the door stays locked until it can", reason)
            self.status["fault"] = f"audit log cannot be written: {reason}"
            return False
        if self.status.get("fault"):
            log.warning("the audit log is writable again; fault cleared")
        self.status["fault"] = None
        return True

    def stop(self) -> None:
        self._stop.set()

    # -- one frame ------------------------------------------------------------------------------
    def _match(self, vector: np.ndarray, now: float) -> MatchResult | None:
        if self.settings.mode == "identify":
            return self.matcher.identify(vector, door_group=self.settings.door_group)
        if self._claim is None or now > self._claim[1]:
            self._claim = None
            return None
        if self._claim[0] is None:   # an unknown badge: refused like a wrong face, nothing revealed
            return MatchResult(Decision.REJECT, None, None, -1.0, self.matcher.accept, self.matcher.retry, [],
                               ["not the claimed person"])
        return self.matcher.verify(vector, self._claim[0], door_group=self.settings.door_group)

    def _check_live(self, frame: np.ndarray, box: np.ndarray, result: MatchResult) -> tuple[MatchResult, bool]:
        """An identity accept stands only on a live frame; otherwise it becomes a reject that names the
        suspected attack (no person: the attacker is nobody), so k accepts need k live frames and attacks
        count towards the lockout like any failure."""
        live = self.pipeline.liveness.check(frame, box)
        self.status["liveness"] = round(live.score, 4)
        return (result, False) if live.live else (refused_as_attack(result, live), True)

    def _challenge_step(self, track, now: float) -> tuple[DoorEvent | None, str, str]:
        """A recognised person is following the head-turn prompts: (event, overlay label, kind). The
        accept is released only when both turns were made by the same tracked face in time; a failure
        counts towards the lockout like a reject."""
        accept, challenge, track_id = self._challenge
        if track is not None and track.id != track_id:
            challenge.fail("another face took the recognised person's place")
        state = challenge.observe(track.face if track is not None else None, now)
        if state == "pending":
            return None, challenge.prompt, "retry"
        self._challenge = None
        if state == "passed":
            return replace(accept, reason=f"{accept.reason}; head-turn challenge passed"), "", "accept"
        self.policy.cooldown_until = 0.0        # the accept never happened
        return (self.policy.fail(now, None, accept.score, f"head-turn challenge failed: {challenge.reason}"),
                challenge.prompt, "reject")

    def step(self, frame: np.ndarray, now: float | None = None) -> FrameOutcome:
        now = self.clock() if now is None else now
        self.reload_gallery_if_changed(now)
        self.apply_remote_commands(now)
        self.frame_index += 1
        self.lock.tick(now)
        result, event, n_faces = None, None, 0
        label, kind, shown_face = "", "none", None
        if self.frame_index % self.settings.detect_every == 0:
            roi = self._roi_face if self.pipeline.config.roi_from_previous else None
            faces = self.pipeline.detector.detect(frame, roi=roi)
            n_faces = len(faces)
            tracks = self.tracker.update(faces, self.frame_index)
            subject = pick_face([t.face for t in tracks], frame.shape, self.pipeline.config.face_policy)
            track = next((t for t in tracks if subject is not None and t.face is subject), None)
            self._roi_face = track.face if track is not None else None
            if self._challenge is not None:
                event, label, kind = self._challenge_step(track, now)
                shown_face = track.face if track is not None else None
            elif track is None:
                if self._subject_track is not None:
                    self.policy.reset()
                self._subject_track = None
            else:
                if track.id != self._subject_track:
                    self.policy.reset()  # a new person: earlier votes were someone else's
                    self._subject_track = track.id
                shown_face = track.face
                if track.needs_embedding():
                    crop = self.pipeline.crop(frame, track.face)
                    quality = self.pipeline.faces_quality(frame, track.face, crop)
                    if quality.ok or not self.settings.require_quality:
                        track.embedding = self.pipeline.embedder.embed(crop[None])[0]
                        track.embedded_quality = view_quality(track.face)
                    else:
                        label, kind = quality.reasons[0], "retry"
                if track.embedding is not None:
                    result = self._match(track.embedding, now)
                    attack = False
                    if result is not None and result.decision is Decision.ACCEPT and self.liveness is not None:
                        result, attack = self._check_live(frame, track.face.box, result)
                    if result is not None:
                        event = self.policy.observe(result, now)
                        label = "photo or screen? show your face" if attack else result.name or "unknown"
                        kind = "attack" if attack else result.decision.value
                        if event is not None and event.kind == "accept" and self.challenge is not None:
                            challenge = HeadTurnChallenge(now, self.challenge.turn_yaw, self.challenge.time_s)
                            self._challenge = (event, challenge, track.id)
                            event, label, kind = None, challenge.prompt, "retry"
        if event is not None:
            recorded = self._handle(event, now)
            kind = event.kind if event.kind in ("accept", "reject", "retry") else "reject"
            label = (self.matcher.gallery.people[event.person_id].name
                     if event.kind == "accept" and event.person_id else event.reason or label)
            if not recorded:
                kind, label = "reject", "door fault: call staff"
        self.status.update(door="open" if self.lock.is_open else "locked", frames=self.frame_index + 1,
                           last_frame=time.time())
        if shown_face is not None or event is not None or self.frame_index % 5 == 0:
            self._update_snapshot(frame, shown_face, label, kind)
        return FrameOutcome(self.frame_index, n_faces, result, event, self.lock.is_open)

    def _handle(self, event: DoorEvent, now: float) -> bool:
        """Record the event, then act on it: the door opens only after its accept entry is durable on
        disk (an unrecorded opening is worse than a person waiting). False if an accept was refused."""
        fields = {"person_id": event.person_id, "score": None if event.score is None else round(event.score, 4),
                  "reason": event.reason}
        opened = True
        if event.kind == "accept" and self.lockdown:
            self._record("lockdown_refused", **fields)       # lockdown: no face opens until the site releases it
            opened = False
        elif event.kind == "accept":
            opened = self._record("accept", **fields)
            if opened:
                self.lock.open_for(self.settings.pulse_seconds, now)
                self._claim = None
        elif event.kind in ("reject", "lockout"):
            self._record(event.kind, **fields)
        self.status["last_event"] = {"kind": event.kind if opened else "fault", "person_id": event.person_id,
                                     "time": time.time()}
        return opened

    def _update_snapshot(self, frame, face, label, kind) -> None:
        import cv2
        status = {"accept": "welcome", "retry": "look at the camera", "reject": "not recognised",
                  "attack": "refused: photo or screen suspected"}.get(kind, "")
        if self.status.get("fault"):
            status = "FAULT: door cannot record, stays locked"
        img = draw_overlay(frame, face, label, status, self.lock.is_open, kind)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            with self._snapshot_lock:
                self.snapshot = buf.tobytes()

    # -- the loop -------------------------------------------------------------------------------
    def run(self, frames: Iterable[np.ndarray], max_frames: int | None = None,
            on_frame: Callable[[FrameOutcome], None] | None = None) -> dict:
        """Process frames until the source ends, stop() is called, or a termination signal arrives
        (counts["signal"] names it; the caller exits 130 then)."""
        previous = {}
        received: list[str] = []

        def on_signal(signum, _frame):
            self.lock.lock_now()  # lock first, then wind down
            received.append(signal.Signals(signum).name)
            self._stop.set()
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                previous[sig] = signal.signal(sig, on_signal)
        self._record("started", mode=self.settings.mode)
        notify("READY=1")
        ping_every = watchdog_interval()
        last_ping = 0.0
        counts = {"frames": 0, "accept": 0, "reject": 0, "lockout": 0}
        try:
            for frame in frames:
                if self._stop.is_set():
                    break
                out = self.step(frame)
                counts["frames"] += 1
                if out.event is not None and out.event.kind in counts:
                    counts[out.event.kind] += 1
                if on_frame:
                    on_frame(out)
                if ping_every and time.monotonic() - last_ping >= ping_every:
                    notify("WATCHDOG=1")
                    last_ping = time.monotonic()
                if max_frames and counts["frames"] >= max_frames:
                    break
        except BaseException as exc:
            self.lock.lock_now()
            self._record("error", reason=f"{type(exc).__name__}: {exc}"[:200])
            raise
        finally:
            self.lock.lock_now()
            self.status["door"] = "locked"
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        counts["signal"] = received[0] if received else None
        self._record("stopped", frames=counts["frames"], **({"signal": received[0]} if received else {}))
        notify("STOPPING=1")
        return counts
