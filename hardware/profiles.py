"""Board profiles: what a board runs (Python, wheel platform tags, pinned requirements, apt packages)
and the door.toml sections that suit it (camera, relay, pipeline)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facegate.edge.config import read_toml
from facegate.edge.errors import UsageError

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"



@dataclass(frozen=True)
class BoardProfile:
    name: str
    description: str
    python: str
    platforms: tuple[str, ...]
    requirements: tuple[str, ...]
    system_site_packages: bool
    apt: tuple[str, ...]
    door: dict          # camera / relay / pipeline sections for door.toml

    def pip_target_args(self) -> list[str]:
        """pip arguments that select this board's wheels from another machine (binary wheels only)."""
        args = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp"]
        for tag in (*self.platforms, "any"):
            args += ["--platform", tag]
        return args


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load_profile(name: str) -> BoardProfile:
    path = PROFILES_DIR / f"{name}.toml"
    if not path.exists():
        raise UsageError(f"unknown board {name!r}; known: {', '.join(list_profiles())}")
    doc = read_toml(path)
    b = doc["board"]
    return BoardProfile(name, b["description"], b["python"], tuple(b["platforms"]), tuple(b["requirements"]),
                        bool(b.get("system_site_packages", False)), tuple(b.get("apt", [])),
                        {k: v for k, v in doc.items() if k != "board"})
