"""Exceptions with messages an installer can act on, and the one table of exit codes.

Every error facegate raises on purpose derives from :class:`FacegateError`, so the CLI prints the
message and exits with the class's code instead of a traceback. :data:`EXIT_CODES` is the table the
README documents (a test keeps the two identical); the decision codes of `verify`/`identify` and the
self-test's failure code live here too, so no module writes a bare number.
"""
from __future__ import annotations

#: the command finished; for `verify` / `identify`: accept
EXIT_OK = 0
#: `verify` / `identify`: score between the retry and accept thresholds, or ambiguous
EXIT_RETRY = 10
#: `verify` / `identify` / `demo`: reject (`demo`: a false accept happened)
EXIT_REJECT = 11
#: `hardware selftest` / `hardware emulate`: a check failed
EXIT_SELFTEST_FAILED = 16
#: Ctrl-C or SIGINT
EXIT_INTERRUPTED = 130

#: every exit code and its meaning, as the README's table shows it
EXIT_CODES: dict[int, str] = {
    0: "success; for `verify`/`identify`: **accept**",
    1: "other facegate error",
    2: "bad command-line usage or configuration",
    3: "an image is missing, empty or corrupt",
    4: ("a model file or card is missing, corrupt, out of range or fails its sha256 check; the card differs "
        "from the one the gallery was enrolled with; no runtime for it"),
    5: "a dataset, pairs or ground-truth file is missing or malformed",
    6: "downloading or verifying teacher weights failed",
    7: "gallery error: wrong key, corrupt/tampered/truncated file (left untouched), other model, locked",
    8: "no such person in the gallery",
    9: "no usable face (none found, or every face failed a quality gate; the reasons are printed)",
    10: "`verify`/`identify`: **retry** (score between the retry and accept thresholds, or ambiguous)",
    11: ("`verify`/`identify`/`demo`: **reject** (`demo`: a false accept happened); `liveness check`, "
         "`enroll --camera`, `--liveness`: attack suspected"),
    12: "relay cannot be driven (missing GPIO library, pin busy)",
    13: "audit log damaged, edited or incomplete (`audit verify`)",
    14: "camera cannot be opened",
    15: "bundle cannot be built or does not match its checksums",
    16: "`hardware selftest` / `hardware emulate`: a check failed",
    17: "the aarch64 emulation cannot be prepared or started (qemu, debootstrap, wheels)",
    18: "site server: the site folder, its store or its key cannot be used (`facegate site`)",
    130: "interrupted: Ctrl-C, or a signal stopped the door (after it locked the relay)",
}


#: exit code for an operating-system error (a folder where a file belongs, no permission, disk full)
#: that no more specific check caught, by the command's area; anything else exits 1
OS_ERROR_EXIT_BY_COMMAND: dict[str, int] = {
    "enroll": 7, "verify": 7, "identify": 7, "gallery": 7, "audit": 13, "door": 2, "detect": 3, "cluster": 3,
    "eval": 5, "distill": 5, "liveness": 5, "calibrate": 5, "bench": 5, "export": 4, "prune": 4, "teachers": 6, "hardware": 15,
    "site": 18,
}


def os_error_message(exc: OSError) -> str:
    """'<what went wrong>: <path>' for an OSError, as an installer would want to read it."""
    what = exc.strerror or str(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else what


class FacegateError(Exception):
    """Base class: the message is meant for the person at the terminal."""

    exit_code = 1


class UsageError(FacegateError):
    """A command-line value is not allowed (unknown format, board, out-of-range option)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file has an unknown key or a value of the wrong type or range."""


class ImageError(FacegateError):
    """An input image is missing, empty, corrupt or not an image."""

    exit_code = 3


class ModelError(FacegateError):
    """A model file or its card is missing, inconsistent or cannot be run."""

    exit_code = 4


class ChecksumError(ModelError):
    """A file's sha256 does not match what its card (or our pin) says."""


class CardChangedError(ModelError):
    """The model card differs from the one the gallery was enrolled with (thresholds edited?)."""


class BackendUnavailableError(ModelError):
    """No installed inference runtime can run this model file."""


class DatasetError(FacegateError):
    """A dataset folder, pairs file or ground-truth file is missing or malformed."""

    exit_code = 5


class FetchError(FacegateError):
    """Downloading or verifying teacher weights failed."""

    exit_code = 6


class GalleryError(FacegateError):
    """The encrypted gallery cannot be used as asked (the file is left untouched)."""

    exit_code = 7


class WrongKeyError(GalleryError):
    """The passphrase / key does not open this gallery."""


class GalleryCorruptError(GalleryError):
    """The gallery file is truncated, tampered with or not a facegate gallery."""


class ModelMismatchError(GalleryError):
    """The gallery was enrolled with a different embedding model."""


class KeyFileError(GalleryError):
    """The key file is missing, malformed or readable by others."""


class GalleryLockedError(GalleryError):
    """Another process holds the gallery's write lock for too long."""


class PersonNotFoundError(GalleryError):
    """No person with that name or id in the gallery."""

    exit_code = 8


class NoFaceError(FacegateError):
    """No usable face in the image (none found, or every face failed a quality gate)."""

    exit_code = 9


class PresentationAttackError(FacegateError):
    """The camera saw a printed photo or a screen, not a person (liveness): refused like a reject."""
    exit_code = 11


class RelayError(FacegateError):
    """The door relay cannot be driven (missing GPIO library, pin busy)."""

    exit_code = 12


class AuditError(FacegateError):
    """The audit log is damaged, edited or incomplete."""

    exit_code = 13


class CameraError(FacegateError):
    """The camera (or replay source) cannot be opened or read."""

    exit_code = 14


class BundleError(FacegateError):
    """An install bundle cannot be built, or does not match its checksums."""

    exit_code = 15


class EmulationError(FacegateError):
    """The emulated aarch64 board cannot be prepared or started."""

    exit_code = 17


class SiteError(FacegateError):
    """The site folder, its store or its server key cannot be used."""

    exit_code = 18


class SiteRequestError(FacegateError):
    """A site server request is refused (bad input, not allowed); `status` is the HTTP code it answers."""

    exit_code = 2

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
