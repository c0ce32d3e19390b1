"""Inference backends: one module per runtime behind :class:`~facegate.edge.backends.base.Backend`.

:func:`load_backend` picks the runtime from the file suffix, so callers never name a runtime unless
they want to.
"""
from __future__ import annotations

from pathlib import Path

from facegate.edge.backends.base import Backend, TensorInfo
from facegate.edge.errors import BackendUnavailableError, ModelError

__all__ = ["Backend", "TensorInfo", "load_backend", "suffix_for_backend", "BACKENDS_BY_SUFFIX"]

#: file suffix -> backend names that can run it, in order of preference
BACKENDS_BY_SUFFIX: dict[str, tuple[str, ...]] = {
    ".tflite": ("litert", "tflite-runtime"),
    ".onnx": ("onnxruntime",),
}

#: ONNX Runtime execution providers by name, tried in order (unavailable ones are skipped, CPU is the
#: fallback). Named as a backend `onnxruntime-<name>` (`[pipeline] backend = "onnxruntime-openvino"`).
ORT_PROVIDERS = {
    "cpu": ("CPUExecutionProvider",),
    "openvino": ("OpenVINOExecutionProvider", "CPUExecutionProvider"),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
ORT_BACKENDS = tuple(f"onnxruntime-{name}" for name in ORT_PROVIDERS if name != "cpu")


def known_backends() -> list[str]:
    return [n for ns in BACKENDS_BY_SUFFIX.values() for n in ns] + list(ORT_BACKENDS)


def suffix_for_backend(name: str) -> str:
    """The model file type a backend runs ('.tflite' for litert and tflite-runtime, '.onnx' for onnxruntime
    with any of its execution providers)."""
    if name in ORT_BACKENDS:
        return ".onnx"
    for suffix, names in BACKENDS_BY_SUFFIX.items():
        if name in names:
            return suffix
    raise ModelError(f"unknown backend {name!r}; known: {', '.join(known_backends())}")


def _construct(name: str, path: Path, threads: int | None, providers: str) -> Backend:
    if name == "litert":
        from facegate.edge.backends.litert import LiteRTBackend
        return LiteRTBackend(path, threads=threads)
    if name == "tflite-runtime":
        from facegate.edge.backends.tflite_runtime import TFLiteRuntimeBackend
        return TFLiteRuntimeBackend(path, threads=threads)
    if name == "onnxruntime" or name in ORT_BACKENDS:
        from facegate.edge.backends.onnxrt import OnnxRuntimeBackend
        if name != "onnxruntime":
            providers = name.removeprefix("onnxruntime-")
        if providers not in ORT_PROVIDERS:
            raise ModelError(f"unknown ONNX Runtime providers {providers!r}; known: {', '.join(ORT_PROVIDERS)}")
        return OnnxRuntimeBackend(path, threads=threads, providers=ORT_PROVIDERS[providers])
    raise ModelError(f"unknown backend {name!r}; known: {', '.join(known_backends())}")


def load_backend(path: str | Path, backend: str | None = None, threads: int | None = None,
                 providers: str = "cpu") -> Backend:
    """Load a model file with the named backend, or the first installed one that runs its type."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if backend:
        return _construct(backend, path, threads, providers)
    names = BACKENDS_BY_SUFFIX.get(path.suffix.lower())
    if not names:
        raise ModelError(f"no backend runs {path.suffix!r} files ({path}); supported: "
                         + ", ".join(sorted(BACKENDS_BY_SUFFIX)))
    errors = []
    for name in names:
        try:
            return _construct(name, path, threads, providers)
        except BackendUnavailableError as exc:
            errors.append(str(exc))
    raise BackendUnavailableError("; ".join(errors))
