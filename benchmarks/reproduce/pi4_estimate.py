"""Estimate Raspberry Pi 4 latency of the default door pipeline from operation counts.

    python benchmarks/reproduce/pi4_estimate.py

Method: count multiply-accumulates (MACs) of every Conv2D / DepthwiseConv2D / Dense layer at the
shapes the door actually runs (FaceNet at 160x160; MTCNN P-Net on every pyramid level of a 640x480
frame at min face 40, R-Net and O-Net on the candidates the cascade really produced for a
one-face frame), then divide by an effective Pi 4 throughput taken from a published measurement:
MobileNet v1 1.0_224 (569 M MACs) in 87 ms on the Pi 4 CPU with TensorFlow Lite
(dev.to/tildalice, "MobileNet vs EfficientNet-Lite: Pi 4 First Model 38ms Gap"), i.e. ~6.5 GMAC/s.
Real numbers differ with thread count, memory bandwidth and op mix (R-Net/O-Net batches are tiny,
FaceNet is large): treat the result as +-2x, to be replaced by a measurement on a board.
"""
from __future__ import annotations

import numpy as np

PI4_MACS_PER_S = 569e6 / 0.087


def layer_macs(model) -> int:
    import keras
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            out = layer.output.shape
            kh, kw = layer.kernel_size
            total += out[1] * out[2] * out[3] * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape
            kh, kw = layer.kernel_size
            total += out[1] * out[2] * out[3] * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def pnet_macs_at(h: int, w: int) -> int:
    """MACs of the fully convolutional P-Net on an h x w input (3x3 conv 10, pool 2, 3x3 conv 16,
    3x3 conv 32, two 1x1 heads)."""
    h1, w1 = h - 2, w - 2
    macs = h1 * w1 * 10 * 9 * 3
    h2, w2 = -(-h1 // 2) - 2, -(-w1 // 2) - 2
    macs += h2 * w2 * 16 * 9 * 10
    h3, w3 = h2 - 2, w2 - 2
    macs += h3 * w3 * 32 * 9 * 16 + h3 * w3 * 32 * 6
    return int(macs)


class Counting:
    """Wraps a backend and records the input shapes it is run on."""

    def __init__(self, backend):
        self.backend, self.shapes = backend, []
        self.name, self.inputs, self.outputs = backend.name, backend.inputs, backend.outputs

    def run(self, inputs):
        self.shapes.append(inputs[0].shape)
        return self.backend.run(inputs)


def main() -> None:
    import time

    from facegate.convert.teachers.facenet import load_teacher
    from facegate.convert.teachers.mtcnn import build_teacher
    from facegate.edge.bench.frames import door_frame
    from facegate.edge.detect import MTCNN, CascadeConfig
    from facegate.edge.downloads import celebrity5_dir
    from facegate.edge.images import list_images
    from facegate.edge.registry import load_detector

    frame = door_frame(list_images(celebrity5_dir() / "val" / "jerry_seinfeld")[0])
    base = load_detector(fmt="tflite", config=CascadeConfig(min_face_size=40))
    nets = [Counting(n) for n in (base.pnet, base.rnet, base.onet)]
    det = MTCNN(*nets, config=base.config)
    det.detect(frame)
    t0 = time.perf_counter()
    for _ in range(10):
        det.detect(frame)
    det_ms = 100 * (time.perf_counter() - t0)
    teachers = build_teacher()
    calls = len(nets[0].shapes) // 11  # P-Net runs per frame (one per pyramid level)
    pnet_macs = sum(pnet_macs_at(h, w) for _, h, w, _ in nets[0].shapes[:calls])
    r_cand = sum(s[0] for s in nets[1].shapes) // 11
    o_cand = sum(s[0] for s in nets[2].shapes) // 11
    rnet_macs = layer_macs(teachers["rnet"]) * r_cand
    onet_macs = layer_macs(teachers["onet"]) * o_cand
    facenet = load_teacher()
    fn_macs = layer_macs(facenet)
    rows = [("MTCNN P-Net (all pyramid levels)", pnet_macs), (f"MTCNN R-Net ({r_cand} candidates)", rnet_macs),
            (f"MTCNN O-Net ({o_cand} candidates)", onet_macs), ("FaceNet 160x160 (1 face)", fn_macs)]
    print(f"pyramid levels: {calls}; x86 measured cascade: {det_ms:.1f} ms per 640x480 frame")
    print("| stage | MACs | Pi 4 estimate (fp32, ~6.5 GMAC/s) |")
    print("|---|---|---|")
    total = 0
    for name, macs in rows:
        total += macs
        print(f"| {name} | {macs / 1e6:.1f} M | {1000 * macs / PI4_MACS_PER_S:.0f} ms |")
    print(f"| **total per frame with one face** | {total / 1e6:.0f} M | **{1000 * total / PI4_MACS_PER_S:.0f} ms** |")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
