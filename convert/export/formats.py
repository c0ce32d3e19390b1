"""The one table of export formats. It drives argument validation, aliases, suggestions for a
misspelled format, file suffixes and which exporter runs (ultralytics-style)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from facegate.edge.errors import UsageError


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str                   # file suffix, or a folder suffix for package formats
    quantizations: tuple[str, ...]
    package: str                  # what must be installed to export it
    runnable_here: bool           # can facegate run it to check parity (else: spec checks)
    description: str


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("tflite", ".tflite", ("fp32", "fp16", "dynamic", "int8"), "tensorflow", True,
                 "TensorFlow Lite / LiteRT: Android apps, Raspberry Pi, Jetson"),
    ExportFormat("onnx", ".onnx", ("fp32", "int8"), "tf2onnx", True,
                 "ONNX (tf2onnx): ONNX Runtime, TensorRT, OpenCV DNN; int8 = QDQ graph from the int8 TFLite"),
    ExportFormat("coreml", ".mlpackage", ("fp32", "fp16"), "coremltools", False, "Core ML ML Program: iOS/macOS apps"),
    ExportFormat("saved_model", "_saved_model", ("fp32",), "tensorflow", False, "TensorFlow SavedModel"),
)}
ALIASES = {"android": "tflite", "litert": "tflite", "ios": "coreml", "mlpackage": "coreml", "tf": "saved_model",
           "savedmodel": "saved_model"}


def resolve_format(name: str) -> ExportFormat:
    key = name.lower().strip()
    key = ALIASES.get(key, key)
    if key in FORMATS:
        return FORMATS[key]
    choices = sorted([*FORMATS, *ALIASES])
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UsageError(f"unknown export format {name!r}.{hint} Formats: {', '.join(FORMATS)} "
                              f"(aliases: {', '.join(f'{a}->{b}' for a, b in ALIASES.items())})")


def validate(fmt: ExportFormat, quant: str) -> None:
    if quant not in fmt.quantizations:
        raise UsageError(f"{fmt.name} export supports {', '.join(fmt.quantizations)}, not {quant!r}")


def exporter(fmt: ExportFormat):
    """The export function for a format (imported lazily: each needs its own package)."""
    if fmt.name == "tflite":
        from facegate.convert.export.tflite import export_tflite
        return export_tflite
    if fmt.name == "onnx":
        from facegate.convert.export.onnx import export_onnx, export_onnx_from_tflite
        from facegate.convert.export.tflite import export_tflite

        def to_onnx(model, path, quant="fp32", opset=13, representative=None, **_):
            if quant == "fp32":
                return export_onnx(model, path, opset=opset)
            tfl = export_tflite(model, Path(path).with_suffix(".int8-source.tflite"), "int8", representative)
            try:
                return export_onnx_from_tflite(tfl, path, opset=opset)
            finally:
                tfl.unlink(missing_ok=True)
        return to_onnx
    if fmt.name == "coreml":
        from facegate.convert.export.coreml import export_coreml
        return lambda model, path, quant="fp32", **_: export_coreml(model, path, quant)
    from facegate.convert.export.saved_model import export_saved_model
    return lambda model, path, quant="fp32", **_: export_saved_model(model, path, quant)


def table() -> str:
    rows = [f"{'format':<12} {'suffix':<14} {'quantisations':<26} {'needs':<12} description"]
    for f in FORMATS.values():
        rows.append(f"{f.name:<12} {f.suffix:<14} {','.join(f.quantizations):<26} {f.package:<12} {f.description}")
    return "\n".join(rows)
