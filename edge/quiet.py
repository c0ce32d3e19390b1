"""Quiet by default: what native libraries print on their own, kept off the terminal unless asked for.

Inference runtimes and TensorFlow write start-up lines straight to file descriptor 2 from C++ (the
XNNPACK delegate's "INFO: Created ..." on every command; TensorFlow's oneDNN and CUDA probing, twice,
at import). Python's logging cannot filter them, so these helpers silence the descriptor around the one
call that prints them. `facegate -v` (debug logging) turns them off and everything shows.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator
from types import ModuleType


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """Send what C++ code writes to file descriptor 2 to /dev/null for the duration.

    Inference runtimes announce themselves there ("INFO: Created TensorFlow Lite XNNPACK delegate for
    CPU.") on every command; Python's logging cannot filter it. Callers use this only around the one
    call that prints it, and not when the user asked for debug output (`facegate -v`)."""
    if not enabled:
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)




class _AlreadyImported(importlib.abc.Loader):
    """Hands the import system a module that was imported a moment ago."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        pass


class QuietImport(importlib.abc.MetaPathFinder):
    """A meta-path hook: the first import of each named top-level package runs with file descriptor 2
    silenced; after that the hook removes itself for that name and imports behave as usual."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.pending = set(names)

    def find_spec(self, name: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if name not in self.pending:
            return None
        self.pending.discard(name)
        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        with native_stderr_silenced():
            module = importlib.import_module(name)
        return importlib.machinery.ModuleSpec(name, _AlreadyImported(module), is_package=hasattr(module, "__path__"))


def quiet_native_imports(names: tuple[str, ...] = ("tensorflow",)) -> None:
    """Install :class:`QuietImport` for `names` (once per process); a no-op for names already imported."""
    names = tuple(n for n in names if n not in sys.modules)
    if names and not any(isinstance(f, QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, QuietImport(names))
