"""Read a PyTorch state dict without PyTorch: both of torch's file layouts, as numpy arrays.

* the zip layout (torch >= 1.6): `<name>/data.pkl` plus one file per storage under `<name>/data/`;
* the legacy layout (before 1.6, what the MiniFASNet weights use): a stream of pickles (magic number,
  protocol version, system info, the state dict, the list of storage keys) followed by every storage
  as an int64 element count and its raw little-endian bytes.

Unpickling is restricted to the handful of names a state dict needs (tensors, storages, OrderedDict):
a .pth file is a pickle, and a pickle from elsewhere must not run code.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from facegate.edge.errors import ModelError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
           "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(_DTYPES[name])


class _TensorRef:
    """A tensor waiting for its storage's bytes (legacy files put them after the pickle)."""

    def __init__(self, storage, offset, size, stride) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self, buffers: dict) -> np.ndarray:
        key, dtype = self.storage
        flat = buffers[key]
        item = dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=tuple(s * item for s in self.stride))
        return np.array(view, dtype=dtype)          # a copy: contiguous and independent of the file


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return _TensorRef(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
               ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise ModelError(f"refusing to unpickle {module}.{name}: not part of a plain state dict")

    def persistent_load(self, saved_id):
        kind, storage_type, key, *_ = saved_id
        if kind != "storage":
            raise ModelError(f"unexpected persistent object {kind!r} in a state dict")
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else np.dtype(np.float32)
        return (str(key), dtype)


def _legacy(data: bytes) -> dict[str, np.ndarray]:
    f = io.BytesIO(data)
    if pickle.load(f) != LEGACY_MAGIC:
        raise ModelError("not a PyTorch file (bad magic number)")
    pickle.load(f)   # protocol version
    pickle.load(f)   # system info (byte order, type sizes)
    unpickler = _Unpickler(f, encoding="latin1")
    state = unpickler.load()
    keys = pickle.load(f)
    dtypes = {ref.storage[0]: ref.storage[1] for ref in state.values() if isinstance(ref, _TensorRef)}
    buffers = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        dtype = dtypes.get(str(key), np.dtype(np.float32))
        buffers[str(key)] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    return {k: v.materialise(buffers) for k, v in state.items() if isinstance(v, _TensorRef)}


def _zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as z:
        pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        root = pkl[: -len("data.pkl")]
        unpickler = _Unpickler(io.BytesIO(z.read(pkl)), encoding="latin1")
        state = unpickler.load()
        buffers = {}
        for ref in state.values():
            if isinstance(ref, _TensorRef) and ref.storage[0] not in buffers:
                key, dtype = ref.storage
                buffers[key] = np.frombuffer(z.read(f"{root}data/{key}"), dtype=dtype)
    return {k: v.materialise(buffers) for k, v in state.items() if isinstance(v, _TensorRef)}


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """name -> numpy array; a DataParallel "module." prefix is removed."""
    path = Path(path)
    try:
        state = _zip(path) if zipfile.is_zipfile(path) else _legacy(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, ValueError, StopIteration) as exc:
        raise ModelError(f"{path} is not a readable PyTorch state dict: {exc}") from exc
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
