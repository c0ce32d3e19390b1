"""Estimate Raspberry Pi 4 latency of the door pipeline from operation counts (not a measurement).

    python benchmarks/reproduce/pi4_estimate.py

Method: count multiply-accumulates (MACs) of every Conv2D / DepthwiseConv2D / Dense layer at the shapes
the door actually runs them, for the committed students with the door's own pipeline settings
(DoorPipelineConfig: min face 40, chained pyramid, large-face fast path) and, for comparison, the
teachers with the full search: each detector set runs on a 640x480 door frame with one face, and the
input shape of every net call is recorded (P-Net on each pyramid level it really visits, R-Net and O-Net
on the candidates the cascade really produced); the Keras sources of the nets are rebuilt at those
shapes and counted. Embedders: one face (student 112x112, teacher 160x160). The counts are divided by an
effective Pi 4 CPU throughput taken from a published measurement: MobileNet v1 1.0_224 (569 M MACs) in
87 ms with TensorFlow Lite (dev.to/tildalice, "MobileNet vs EfficientNet-Lite: Pi 4 First Model 38ms
Gap"), i.e. ~6.5 GMAC/s fp32. Real numbers differ with threads, memory bandwidth and op mix (tiny R/O-Net
batches, PReLU): treat the result as +-2x, to be replaced by a measurement on a board.
"""
from __future__ import annotations

from pathlib import Path

PI4_MACS_PER_S = 569e6 / 0.087
ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "convert" / "students" / "weights"


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
            total += out[1] * out[2] * out[3] * kh * kw * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def macs_at(model, height: int, width: int) -> int:
    """MACs of a fully convolutional net (P-Net) rebuilt for an input of height x width."""
    import keras
    return layer_macs(keras.models.clone_model(model, input_tensors=keras.Input((height, width, 3))))


class Counting:
    """Wraps a backend and records the input shapes it is run on."""

    def __init__(self, backend):
        self.backend, self.shapes = backend, []
        self.name, self.inputs, self.outputs = backend.name, backend.inputs, backend.outputs

    def run(self, inputs):
        self.shapes.append(inputs[0].shape)
        return self.backend.run(inputs)


def detector_rows(name: str, nets_keras: dict, config, frame) -> list[tuple[str, int]]:
    """MACs per net for one frame of `name` run with `config`."""
    from facegate.edge.detect import MTCNN
    from facegate.edge.registry import load_detector

    base = load_detector(name, fmt="tflite", config=config)
    counting = [Counting(n) for n in (base.pnet, base.rnet, base.onet)]
    MTCNN(*counting, config=base.config).detect(frame)   # base.config holds the set's thresholds
    pnet, rnet, onet = counting
    levels = [(s[1], s[2]) for s in pnet.shapes]
    r_cand, o_cand = sum(s[0] for s in rnet.shapes), sum(s[0] for s in onet.shapes)
    return [(f"{name} P-Net ({len(levels)} pyramid levels)", sum(macs_at(nets_keras["pnet"], h, w) for h, w in levels)),
            (f"{name} R-Net ({r_cand} candidates)", layer_macs(nets_keras["rnet"]) * r_cand),
            (f"{name} O-Net ({o_cand} candidates)", layer_macs(nets_keras["onet"]) * o_cand)]


def main() -> None:
    import keras

    from facegate.convert.teachers.facenet import load_teacher
    from facegate.convert.teachers.mtcnn import build_teacher
    from facegate.edge.bench.frames import door_frame
    from facegate.edge.door.config import DoorPipelineConfig
    from facegate.edge.downloads import celebrity5_dir
    from facegate.edge.face.pipeline import PipelineConfig
    from facegate.edge.images import list_images

    frame = door_frame(list_images(celebrity5_dir() / "val" / "jerry_seinfeld")[0])
    students = {n: keras.saving.load_model(WEIGHTS / f"mtcnn-student-{n}.keras", compile=False)
                for n in ("pnet", "rnet", "onet")}
    embedder = keras.saving.load_model(WEIGHTS / "facenet-student.keras", compile=False)
    setups = {
        "door defaults: student detector (fast path) + student embedder":
            detector_rows("mtcnn-student", students, DoorPipelineConfig().cascade_config(), frame)
            + [("facenet-student 112x112 (1 face)", layer_macs(embedder))],
        "teachers, full search (the first release)":
            detector_rows("mtcnn-teacher", build_teacher(), PipelineConfig().cascade_config(), frame)
            + [("facenet-teacher 160x160 (1 face)", layer_macs(load_teacher()))],
    }
    for title, rows in setups.items():
        print(f"\n{title}\n| stage | MACs | Pi 4 estimate (fp32, ~6.5 GMAC/s) |\n|---|---|---|")
        for name, macs in rows:
            print(f"| {name} | {macs / 1e6:.1f} M | {1000 * macs / PI4_MACS_PER_S:.1f} ms |")
        total = sum(m for _, m in rows)
        print(f"| **total per frame with one face** | {total / 1e6:.0f} M | **{1000 * total / PI4_MACS_PER_S:.0f} ms** |")


if __name__ == "__main__":
    main()
