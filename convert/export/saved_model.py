"""Keras -> TensorFlow SavedModel (serving signature), for TF Serving or further conversion."""
from __future__ import annotations

import shutil
from pathlib import Path

import keras


def export_saved_model(model: keras.Model, path: str | Path, quant: str = "fp32") -> Path:
    if quant != "fp32":
        raise ValueError("SavedModel export is fp32 only")
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), verbose=False)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path
