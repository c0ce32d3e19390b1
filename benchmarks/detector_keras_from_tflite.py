"""Rebuild a designed-layout student net's Keras file from its exported TFLite file.

    python benchmarks/detector_keras_from_tflite.py edge/models/mtcnn-student/pnet.tflite pnet 16 24 32 OUT.keras

Why: until issue 6's factorised release, `convert/students/weights/mtcnn-student-pnet.keras` was an
older P-Net than the shipped `pnet.tflite` (stage 1 vs stage 7; held-out AP 0.605 vs 0.706 alone in
the teacher cascade). The float TFLite keeps every weight, named by its Keras layer, so the shipped
net is recovered exactly (the script checks the outputs) instead of being retrained.
"""
from __future__ import annotations

import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from facegate.convert.students.mtcnn import DetectorStudentConfig, build_student_nets


def tflite_weights(path: str) -> dict[str, np.ndarray]:
    it = Interpreter(path, experimental_preserve_all_tensors=True)
    out = {}
    for d in it.get_tensor_details():
        try:
            out[d["name"]] = it.get_tensor(d["index"])
        except ValueError:
            continue                     # activations have no data before a run
    return out


def main(path: str, net: str, widths: list[int], out: str) -> float:
    model = build_student_nets(DetectorStudentConfig(**{net: tuple(widths)}))[net]
    tensors = tflite_weights(path)
    for layer in model.layers:
        if not layer.weights:
            continue
        tag = f"/{layer.name}_1/"
        kernel = next(v for k, v in tensors.items() if tag in k and ";" not in k and v.ndim >= 2)
        bias = next(v for k, v in tensors.items() if tag in k and ";" in k and v.ndim == 1)
        if layer.__class__.__name__ == "DepthwiseConv2D":
            kernel = kernel.transpose(1, 2, 3, 0)              # (1, kh, kw, C) -> (kh, kw, C, 1)
        elif layer.__class__.__name__ == "Conv2D":
            kernel = kernel.transpose(1, 2, 3, 0)              # (out, kh, kw, in) -> (kh, kw, in, out)
        else:
            kernel = kernel.T                                  # dense (out, in) -> (in, out)
        layer.set_weights([kernel, bias])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 48, 48, 3)).astype(np.float32)
    it = Interpreter(path)
    it.resize_tensor_input(it.get_input_details()[0]["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    ref = sorted((it.get_tensor(o["index"]) for o in it.get_output_details()), key=lambda a: a.shape[-1])
    got = sorted((np.asarray(o) for o in model(x)), key=lambda a: a.shape[-1])
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ref, got))
    if diff > 1e-4:
        raise SystemExit(f"{path}: rebuilt {net} differs from the TFLite file by {diff}")
    model.save(out)
    print(f"{out}: {net} {widths} from {path}, max |diff| {diff:.2e}")
    return diff


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [int(w) for w in sys.argv[3:-1]], sys.argv[-1])
