"""1:N scores over int8 templates with ONNX Runtime's integer matrix products.

A float32 gallery of a million 128-D templates is 512 MB that every probe streams through; int8 codes
are a quarter of that, but numpy has no fast int8 product. ONNX Runtime has two, both fastest when the
templates are a constant it packs once: `MatMulNBits` (8-bit weights with one scale per block — here one
block per template, so its scale is the template's — and the float probe quantised inside, int8 compute:
the kernel tuned for one-row products, 7 ms for a million templates here) and, where a build lacks its
8-bit form, `MatMulInteger` (VNNI / AVX2 on x86, SDOT on ARM; the probe as uint8 with zero point 128, the
templates' transpose as int8, the per-template scale applied in the graph: 8-9 ms). The integer scores
only choose candidates; the candidates' scores are then recomputed exactly
from the stored codes and the float probe (:meth:`Int8Scorer.rescore`), so decisions use the same
numbers as the float path on the same int8 gallery and a kernel's rounding or saturation (AVX2
without VNNI saturates some u8 x s8 pair sums) can at worst hide a candidate, never change a score.

The ONNX graphs are a node or three; they are written here with a few lines of protobuf encoding so that the edge
runtime needs no `onnx` package.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

_FLOAT, _UINT8, _INT8 = 1, 2, 3          # onnx.TensorProto data types


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: bytes | int | str) -> bytes:
    """One protobuf field: varint (wire type 0) for ints, length-delimited (2) for bytes and text."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, dtype: int, dims: tuple[int, ...], raw: bytes) -> bytes:
    return b"".join(_field(1, d) for d in dims) + _field(2, dtype) + _field(8, name) + _field(9, raw)


def _value_info(name: str, dtype: int, dims: tuple[int | str, ...]) -> bytes:
    shape = b"".join(_field(1, _field(1, d) if isinstance(d, int) else _field(2, d)) for d in dims)
    return _field(1, name) + _field(2, _field(1, _field(1, dtype) + _field(2, shape)))


def _node(op: str, inputs: tuple[str, ...], output: str, attributes: bytes = b"") -> bytes:
    return b"".join(_field(1, i) for i in inputs) + _field(2, output) + _field(4, op) + attributes


def matmul_integer_model(codes: np.ndarray, scales: np.ndarray) -> bytes:
    """ONNX model bytes: Y[float, (m, n)] = ((A[uint8, (m, dim)] - 128) @ codes.T) * scales, codes int8
    (n, dim), one scale per template (the probe's own scale is the same for a whole row, so it is left
    out: it changes no ranking)."""
    n, dim = codes.shape
    to_float = _field(5, _field(1, "to") + _field(3, 1) + _field(20, 2))      # AttributeProto: to = FLOAT
    graph = (_field(1, _node("MatMulInteger", ("A", "B", "a_zero"), "Yi"))
             + _field(1, _node("Cast", ("Yi",), "Yf", to_float))
             + _field(1, _node("Mul", ("Yf", "S"), "Y"))
             + _field(2, "int8_scores")
             + _field(5, _tensor("B", _INT8, (dim, n), np.ascontiguousarray(codes.T).tobytes()))
             + _field(5, _tensor("a_zero", _UINT8, (), bytes([128])))
             + _field(5, _tensor("S", _FLOAT, (n,), np.asarray(scales, "<f4").tobytes()))
             + _field(11, _value_info("A", _UINT8, ("m", dim)))
             + _field(12, _value_info("Y", _FLOAT, ("m", n))))
    opset = _field(1, "") + _field(2, 17)
    return _field(1, 8) + _field(7, graph) + _field(8, opset)


def matmul_nbits_model(codes: np.ndarray, scales: np.ndarray) -> bytes:
    """ONNX model bytes: Y[float, (m, n)] = A[float, (m, dim)] @ (codes * scales).T with the com.microsoft
    MatMulNBits op: 8 bits, one block of `dim` per template (stored as code + 128, its default zero point),
    accuracy level 4 (the probe quantised to int8 per block, integer products)."""
    n, dim = codes.shape
    attributes = b"".join(_field(5, _field(1, name) + _field(3, value) + _field(20, 2)) for name, value in
                          (("K", dim), ("N", n), ("bits", 8), ("block_size", dim), ("accuracy_level", 4)))
    stored = (codes.astype(np.int16) + 128).astype(np.uint8)
    graph = (_field(1, _node("MatMulNBits", ("A", "B", "S"), "Y", attributes) + _field(7, "com.microsoft"))
             + _field(2, "int8_scores")
             + _field(5, _tensor("B", _UINT8, (n, 1, dim), stored.tobytes()))
             + _field(5, _tensor("S", _FLOAT, (n,), np.asarray(scales, "<f4").tobytes()))
             + _field(11, _value_info("A", _FLOAT, ("m", dim)))
             + _field(12, _value_info("Y", _FLOAT, ("m", n))))
    opsets = _field(8, _field(1, "") + _field(2, 17)) + _field(8, _field(1, "com.microsoft") + _field(2, 1))
    return _field(1, 8) + _field(7, graph) + opsets


def quantize_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes, float32 scale per row) with value = code * scale; each row uses all of [-127, 127]."""
    v = np.asarray(vectors, np.float32)
    peak = np.abs(v).max(axis=1) if len(v) else np.zeros(0, np.float32)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.round(v / scale[:, None]), -127, 127).astype(np.int8)
    return codes, scale


class Int8Scorer:
    """Approximate scores of probes against int8 templates (one ONNX Runtime session per gallery
    snapshot), and their exact rescoring."""

    def __init__(self, codes: np.ndarray, scales: np.ndarray, threads: int | None = None,
                 kernel: str | None = None) -> None:
        """`kernel`: "MatMulNBits" or "MatMulInteger"; default: the first this ONNX Runtime builds."""
        import onnxruntime as ort
        self.codes = np.ascontiguousarray(codes, np.int8)
        self.scales = np.asarray(scales, np.float32)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # idle pool threads sleep, as the door's model sessions do (they spun against the camera thread)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        builders = {"MatMulNBits": matmul_nbits_model, "MatMulInteger": matmul_integer_model}
        failures = []
        for name in [kernel] if kernel else list(builders):
            try:
                self._session = ort.InferenceSession(builders[name](self.codes, self.scales), options,
                                                     providers=["CPUExecutionProvider"])
            except Exception as exc:       # an ONNX Runtime without the op in this form: try the next kernel
                failures.append(f"{name}: {str(exc)[:200]}")
                continue
            self.kernel = name
            break
        else:
            raise RuntimeError("ONNX Runtime builds no int8 scoring kernel here: " + "; ".join(failures))
        if failures:
            log.info("int8 gallery scoring uses %s (%s)", self.kernel, "; ".join(failures))

    def ranking_scores(self, units: np.ndarray) -> np.ndarray:
        """(m, n) scores that rank templates as the cosines do (MatMulInteger: each row scaled by its probe's
        own constant): enough to choose candidates, which :meth:`rescore` then scores exactly."""
        units = np.atleast_2d(np.asarray(units, np.float32))
        if self.kernel == "MatMulNBits":
            return self._session.run(None, {"A": units})[0]
        peak = np.maximum(np.abs(units).max(axis=1), 1e-12)
        a = (np.clip(np.round(units * (127.0 / peak)[:, None]), -127, 127) + 128).astype(np.uint8)
        return self._session.run(None, {"A": a})[0]

    def rescore(self, unit: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact scores of the float probe against the stored codes of `rows`."""
        return (self.codes[rows].astype(np.float32) * self.scales[rows, None]) @ unit


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


__all__ = ["Int8Scorer", "available", "matmul_integer_model", "matmul_nbits_model", "quantize_rows"]
