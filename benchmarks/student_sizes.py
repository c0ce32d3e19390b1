"""How big should the student be? Parameters, int8 TFLite size, inference latency (LiteRT, 1 and 2
threads) and CPU training cost per image for MobileFaceNet widths/depths — the measurements the
default (width 1.0, depth 1.0) was chosen from. Weights are random: this measures cost, not accuracy.

    python benchmarks/student_sizes.py [--widths 0.5 0.75 1.0] [--depths 1.0]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=float, nargs="+", default=[0.5, 0.75, 1.0])
    ap.add_argument("--depths", type=float, nargs="+", default=[1.0])
    args = ap.parse_args()

    import keras
    import tensorflow as tf

    from facegate.convert.export.tflite import export_tflite
    from facegate.convert.students.mobilefacenet import StudentConfig, build_student
    from facegate.edge.backends import load_backend
    from facegate.edge.timing import median_ms

    rng = np.random.default_rng(0)
    rep = [(rng.normal(0, 0.5, (1, 112, 112, 3)).astype(np.float32),) for _ in range(20)]
    print("| width | depth | params | int8 TFLite | LiteRT 1 thread | 2 threads | train ms/img (batch 64) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for depth in args.depths:
            for width in args.widths:
                model = build_student(StudentConfig(width=width, depth=depth))
                path = export_tflite(model, Path(tmp) / f"s{width}_{depth}.tflite", quant="int8",
                                     representative=lambda: (list(r) for r in rep))
                x = rep[0][0]
                lat = []
                for threads in (1, 2):
                    backend = load_backend(path, threads=threads)
                    lat.append(median_ms(lambda backend=backend: backend.run([x]), 30))
                opt = keras.optimizers.AdamW(1e-3)
                xb, tb = tf.random.normal((64, 112, 112, 3)), tf.random.normal((64, 128))

                @tf.function
                def step(xb, tb, model=model, opt=opt):
                    with tf.GradientTape() as g:
                        loss = tf.reduce_mean(tf.square(model(xb, training=True) - tb))
                    opt.apply_gradients(zip(g.gradient(loss, model.trainable_variables), model.trainable_variables))
                step(xb, tb)
                t0 = time.perf_counter()
                for _ in range(3):
                    step(xb, tb)
                train = (time.perf_counter() - t0) / 3 / 64 * 1000
                print(f"| {width} | {depth} | {model.count_params():,} | {path.stat().st_size / 1e6:.2f} MB | "
                      f"{lat[0]} ms | {lat[1]} ms | {train:.1f} |")


if __name__ == "__main__":
    main()
