"""ONNX Runtime backend for .onnx files: CPU by default; OpenVINO (x86 laptops and NUCs, from the
`onnxruntime-openvino` build), CUDA/TensorRT (Jetson) when asked for and installed, else CPU with a warning."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facegate.edge.backends.base import TensorInfo
from facegate.edge.errors import BackendUnavailableError, ModelError

log = logging.getLogger(__name__)

#: what each provider's short name in a backend name is (the backend reports the provider that runs)
_PROVIDER_NAMES = {"OpenVINOExecutionProvider": "openvino", "CUDAExecutionProvider": "cuda",
                   "TensorrtExecutionProvider": "tensorrt"}
_INSTALL_HINT = {
    "OpenVINOExecutionProvider": "install the OpenVINO build of ONNX Runtime in place of the plain one: "
                                 "pip uninstall -y onnxruntime && pip install 'facegate[openvino]'",
    "CUDAExecutionProvider": "install NVIDIA's onnxruntime-gpu build for this board",
    "TensorrtExecutionProvider": "install NVIDIA's onnxruntime-gpu build for this board",
}

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
              "tensor(int8)": "int8", "tensor(int64)": "int64"}


class OnnxRuntimeBackend:
    """An .onnx model run by an onnxruntime InferenceSession."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise BackendUnavailableError(
                "running .onnx models needs ONNX Runtime: pip install 'facegate[edge]' (onnxruntime)"
            ) from exc
        self.path = Path(path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: a cascade holds three sessions whose pools
        # spun against each other and against the camera and Python on a 2-4 core board (MTCNN with
        # 2 threads took 22 ms per door frame spinning, 13 ms not; 1 thread 9 ms either way).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        available = set(ort.get_available_providers())
        chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        if providers[0] not in available:
            log.warning("%s is not in this ONNX Runtime build (it has %s): %s runs on %s. To use it, %s.",
                        providers[0], ", ".join(sorted(available)), self.path.name, chosen[0],
                        _INSTALL_HINT.get(providers[0], "install a build that has it"))
        options = [self._provider_options(p, threads) for p in chosen]
        try:
            self._sess = ort.InferenceSession(str(self.path), sess_options=opts, providers=chosen,
                                              provider_options=options)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"ONNX Runtime cannot load {self.path}: {exc}") from exc
        self._in_names = [i.name for i in self._sess.get_inputs()]
        self.providers = list(self._sess.get_providers())
        first = _PROVIDER_NAMES.get(self.providers[0])
        self.name = f"onnxruntime-{first}" if first else "onnxruntime"

    @staticmethod
    def _provider_options(provider: str, threads: int | None) -> dict:
        """OpenVINO on the CPU, in the model's own precision (on CPUs with AMX/AVX512-BF16 its default
        may compute in bf16, which moves embeddings), with the backend's thread count."""
        if provider != "OpenVINOExecutionProvider":
            return {}
        options = {"device_type": "CPU", "precision": "ACCURACY"}
        if threads:
            options["num_of_threads"] = str(threads)
        return options

    @staticmethod
    def _info(arg) -> TensorInfo:
        shape = tuple(s if isinstance(s, int) else None for s in arg.shape)
        return TensorInfo(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))

    @property
    def inputs(self) -> list[TensorInfo]:
        return [self._info(a) for a in self._sess.get_inputs()]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [self._info(a) for a in self._sess.get_outputs()]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._in_names):
            raise ModelError(f"{self.path.name} takes {len(self._in_names)} inputs, got {len(inputs)}")
        feed = {n: np.asarray(x, np.float32) for n, x in zip(self._in_names, inputs)}
        return list(self._sess.run(None, feed))
