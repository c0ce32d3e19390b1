"""The gallery on disk: atomic, durable writes under an exclusive lock.

Every write goes to a temporary file in the same folder, is fsync'ed, renamed over the gallery
and the folder is fsync'ed: a crash or power cut at any moment leaves either the old or the new
gallery, never a mix. Writers take an flock on `<gallery>.lock`, so concurrent enrolments are
serialised instead of losing each other's changes. Reads need no lock (rename is atomic).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from facegate.edge.durable import TMP_PREFIX, atomic_write
from facegate.edge.errors import GalleryCorruptError, GalleryError, GalleryLockedError
from facegate.edge.gallery.fileformat import pack, read_header, unpack
from facegate.edge.gallery.keys import KeySource
from facegate.edge.gallery.records import Gallery, ModelBinding

log = logging.getLogger(__name__)
class GalleryStore:
    """One gallery file and the key that opens it."""

    def __init__(self, path: str | Path, key: KeySource, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.key = key
        self.lock_timeout = lock_timeout
        self._kdf: dict | None = None
        self._key_bytes: bytes | None = None
        self._generation = 0

    # -- key handling ---------------------------------------------------------------------------
    def _key_for(self, kdf: dict) -> bytes:
        if self._kdf != kdf or self._key_bytes is None:
            self._key_bytes = self.key.derive(kdf)
            self._kdf = kdf
        return self._key_bytes

    # -- reading --------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def load(self, expect: ModelBinding | None = None) -> Gallery:
        """Decrypt and return the gallery; with `expect`, refuse templates of another model."""
        gallery, header = unpack(self._read(), self._key_for)
        self._generation = int(header.get("generation", 0))
        if expect is not None:
            gallery.binding.check(expect)
        return gallery

    def _read(self) -> bytes:
        if self.path.is_dir():
            raise GalleryError(f"{self.path} is a folder, not a gallery file (galleries are single .fgg files)")
        try:
            return self.path.read_bytes()
        except FileNotFoundError as exc:
            raise GalleryError(f"gallery not found: {self.path} (create it by enrolling someone)") from exc
        except OSError as exc:
            raise GalleryError(f"gallery {self.path} cannot be read: {exc.strerror}") from exc

    def header(self) -> dict:
        """The plaintext header (no key needed): format, model binding, dtype."""
        return read_header(self._read())[0]

    # -- writing --------------------------------------------------------------------------------
    def create(self, binding: ModelBinding, template_dtype: str = "float32", keep_crops: bool = False) -> Gallery:
        if self.path.exists():
            raise GalleryError(f"gallery already exists: {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        gallery = Gallery(binding, template_dtype, keep_crops)
        self._kdf = self.key.new_kdf()
        self._key_bytes = self.key.derive(self._kdf)
        with self.locked():
            if self.path.exists():
                raise GalleryError(f"gallery already exists: {self.path}")
            self._write(gallery)
        return gallery

    def _write(self, gallery: Gallery) -> None:
        assert self._kdf is not None and self._key_bytes is not None
        self._generation += 1
        atomic_write(self.path, pack(gallery, self._kdf, self._key_bytes, self._generation))

    def save(self, gallery: Gallery) -> None:
        """Write the gallery (callers that read-modify-write should use transaction())."""
        if self._kdf is None:
            self._kdf = self.key.new_kdf()
            self._key_bytes = self.key.derive(self._kdf)
        with self.locked():
            self._write(gallery)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive writer lock (flock on <gallery>.lock), waiting up to lock_timeout seconds."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise GalleryLockedError(
                            f"another facegate process has held {lock_path} for {self.lock_timeout:.0f} s; "
                            "try again when it has finished") from exc
                    time.sleep(0.05)
            self._remove_stale_temps()
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _remove_stale_temps(self) -> None:
        """Temp files left by a writer that died mid-write (we hold the lock: none is live)."""
        for tmp in self.path.parent.glob(f"{TMP_PREFIX}{self.path.name}.*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @contextlib.contextmanager
    def transaction(self, expect: ModelBinding | None = None) -> Iterator[Gallery]:
        """Lock, load, let the caller change the gallery, write it back atomically.

        If the block raises, nothing is written and the file is untouched.
        """
        with self.locked():
            gallery = self.load(expect)
            yield gallery
            self._write(gallery)

    @contextlib.contextmanager
    def open_or_create(self, binding: ModelBinding, template_dtype: str = "float32",
                       keep_crops: bool = False) -> Iterator[tuple[Gallery, bool]]:
        """transaction() that creates the gallery if it does not exist yet, deciding under the lock:
        two first enrolments at once both land (one creates, the other adds to it). Yields (gallery,
        created)."""
        with self.locked():
            created = not self.path.exists()
            if created:
                gallery = Gallery(binding, template_dtype, keep_crops)
                self._kdf = self.key.new_kdf()
                self._key_bytes = self.key.derive(self._kdf)
                self._generation = 0
            else:
                gallery = self.load(binding)
            yield gallery, created
            self._write(gallery)

    def rebind(self, binding: ModelBinding) -> ModelBinding:
        """Pin a deliberately changed model card (same model file, recalibrated thresholds); returns the
        old binding. Needs the gallery key, so whoever edits a card on the board cannot do it."""
        with self.locked():
            gallery = self.load()
            old = gallery.binding
            if (old.sha256, old.dim) != (binding.sha256, binding.dim):
                old.check(binding)            # raises ModelMismatchError with the re-enrol advice
            gallery.binding = binding
            self._write(gallery)
        return old

    def rekey(self, new_key: KeySource) -> None:
        """Re-encrypt under a new key/passphrase (old key needed to open it)."""
        with self.locked():
            gallery = self.load()
            self.key = new_key
            self._kdf = new_key.new_kdf()
            self._key_bytes = new_key.derive(self._kdf)
            self._write(gallery)

    def export_to(self, dest: str | Path, bundle_key: KeySource) -> Path:
        """An encrypted copy under another key (to move people between doors)."""
        gallery = self.load()
        out = GalleryStore(dest, bundle_key)
        if out.path.exists():
            raise GalleryError(f"refusing to overwrite {out.path}")
        out._kdf = bundle_key.new_kdf()
        out._key_bytes = bundle_key.derive(out._kdf)
        with out.locked():
            out._write(gallery)
        return out.path

    def import_from(self, src: str | Path, bundle_key: KeySource) -> list[str]:
        """Merge the people of an exported bundle (same model required); returns names added."""
        incoming = GalleryStore(src, bundle_key).load()
        added = []
        with self.transaction(expect=incoming.binding) as gallery:
            theirs, ours = incoming.projection, gallery.projection
            if (theirs and theirs.sha256) != (ours and ours.sha256):
                raise GalleryError("the bundle's templates are stored in another space (PCA projection or none) "
                                   "than this gallery's; convert one of them first (nothing was imported)")
            names = {p.name for p in gallery.people.values()}
            clash = [p.name for p in incoming.people.values() if p.name in names]
            if clash:
                raise GalleryError(f"people already in this gallery: {', '.join(sorted(clash))}; "
                                   "rename or remove them first (nothing was imported)")
            for i, pid in enumerate(incoming.person_order):
                src_p = incoming.people[pid]
                person = gallery.add_person(src_p.name, src_p.external_id, src_p.valid_from,
                                            src_p.valid_until, src_p.groups)
                sel = incoming.owners == i
                crops = [c for c, s in zip(incoming.crops, sel) if s] if gallery.keep_crops else None
                if gallery.keep_crops and any(c is None for c in crops):
                    raise GalleryError("the bundle has no face crops but this gallery keeps them")
                gallery.add_templates(person.id, incoming.templates[sel], crops, projected=True)
                added.append(src_p.name)
        return added

    def check(self) -> dict:
        """Full integrity check: decrypt, decode, and cross-check counts."""
        gallery = self.load()
        n = len(gallery.templates)
        if len(gallery.owners) != n or len(gallery.crops) != n:
            raise GalleryCorruptError("template, owner and crop counts disagree")
        if n and (gallery.owners.max() >= len(gallery.person_order) or gallery.owners.min() < 0):
            raise GalleryCorruptError("a template belongs to no person")
        return {"people": len(gallery.people), "templates": n, "model": gallery.binding.name,
                "dim": gallery.binding.dim, "template_dtype": gallery.template_dtype,
                "pca_dims": gallery.projection.dims if gallery.projection is not None else None,
                "keeps_crops": gallery.keep_crops, "generation": self._generation}
