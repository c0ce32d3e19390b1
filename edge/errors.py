"""Exceptions with messages an installer can act on.

Every error facegate raises on purpose derives from :class:`FacegateError`, so the CLI can print the
message and exit non-zero instead of a traceback.
"""
from __future__ import annotations


class FacegateError(Exception):
    """Base class: the message is meant for the person at the terminal."""

    exit_code = 1


class ImageError(FacegateError):
    """An input image is missing, empty, corrupt or not an image."""

    exit_code = 3


class ModelError(FacegateError):
    """A model file or its card is missing, inconsistent or cannot be run."""

    exit_code = 4


class ChecksumError(ModelError):
    """A file's sha256 does not match what its card (or our pin) says."""


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
