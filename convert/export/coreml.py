"""Keras -> Core ML (.mlpackage) for iOS apps.

Prediction needs macOS, so on Linux the export is checked through its spec (input/output names,
shapes and types) rather than by running it; the card says so.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import keras

log = logging.getLogger(__name__)


def export_coreml(model: keras.Model, path: str | Path, quant: str = "fp32") -> Path:
    import coremltools as ct

    if quant not in ("fp32", "fp16"):
        raise ValueError(f"Core ML quantisation must be fp32 or fp16, not {quant!r}")
    shape = (1, *model.inputs[0].shape[1:])
    precision = ct.precision.FLOAT16 if quant == "fp16" else ct.precision.FLOAT32
    graph_input = model.inputs[0].name.split(":")[0]
    mlmodel = ct.convert(model, source="tensorflow", convert_to="mlprogram",
                         inputs=[ct.TensorType(name=graph_input, shape=shape)],
                         compute_precision=precision, minimum_deployment_target=ct.target.iOS15,
                         skip_model_load=True)
    # stable feature names for app code, whatever Keras called its tensors
    spec = mlmodel.get_spec()
    ct.utils.rename_feature(spec, spec.description.input[0].name, "image")
    ct.utils.rename_feature(spec, spec.description.output[0].name, "embedding")
    mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    path = Path(path)
    tmp = path.with_name(path.stem + ".part.mlpackage")  # coremltools insists on the suffix
    shutil.rmtree(tmp, ignore_errors=True)
    mlmodel.save(str(tmp))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    log.info("wrote %s (%s)", path, quant)
    return path


def coreml_spec_summary(path: str | Path) -> dict:
    """Inputs and outputs (name, shape, type) read from the saved package's spec."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    def describe(features):
        out = []
        for f in features:
            arr = f.type.multiArrayType
            out.append({"name": f.name, "shape": list(arr.shape), "type": str(arr.dataType)})
        return out
    return {"inputs": describe(spec.description.input), "outputs": describe(spec.description.output),
            "spec_version": spec.specificationVersion}
