"""Where the default model files live and how to open them.

Small models are committed under `edge/models/<name>/` (package data) with their cards, so a fresh
install runs without downloading anything. `facegate teachers export-mtcnn` regenerates the teacher
detector files.
"""
from __future__ import annotations

import logging
from importlib.metadata import entry_points
from pathlib import Path

from facegate.edge.backends import load_backend, suffix_for_backend
from facegate.edge.cards import load_card
from facegate.edge.detect.mtcnn import MTCNN, REFERENCE_THRESHOLDS, CascadeConfig
from facegate.edge.downloads import cache_dir
from facegate.edge.errors import ModelError
from facegate.edge.face.embed import Embedder

log = logging.getLogger(__name__)
MODELS_DIR = Path(__file__).resolve().parent / "models"
#: the distilled student is the default detector (teacher-level WIDER AP and landmarks, 1.2-1.3x faster
#: per frame here: docs/benchmarks.md); the teacher and the int8 set are selectable by name
DEFAULT_DETECTOR = "mtcnn-student"
DETECTORS = ("mtcnn-teacher", "mtcnn-student", "mtcnn-student-int8")


def _model_folder(name: str, kind: str, known: tuple[str, ...], holds: str) -> Path:
    """A committed model folder by name, or any folder by path (ModelError naming the known ones)."""
    path = Path(name)
    if path.is_dir():
        return path
    path = MODELS_DIR / name
    if not path.is_dir():
        raise ModelError(f"unknown {kind} {name!r}; known: {', '.join(known)} or a folder with {holds}")
    return path


def detector_dir(name: str = DEFAULT_DETECTOR) -> Path:
    return _model_folder(name, "detector", DETECTORS, "pnet/rnet/onet model files")


#: the committed liveness sets (MiniFASNetV2 + V1SE fine-tuned on pad_dev), by precision; the default first
#: fine-tuned on pad_dev (fp16 = the door's default), and the published nets as imported (for a site that
#: calibrates its own threshold: `facegate calibrate liveness`)
LIVENESS_SETS = ("minifasnet-fp16", "minifasnet-int8", "minifasnet-fp32", "minifasnet-published-fp16")
DEFAULT_LIVENESS = LIVENESS_SETS[0]


def liveness_dir(name: str = DEFAULT_LIVENESS) -> Path:
    """A liveness set folder by name (the committed sets) or path."""
    return _model_folder(name, "liveness set", LIVENESS_SETS, "liveness model files and their cards")


def load_liveness(name: str = DEFAULT_LIVENESS, threshold: float | None = None, threads: int | None = None):
    """The fused liveness checker of a set (its models' format follows the folder: .tflite or .onnx)."""
    from facegate.edge.face.liveness import LivenessChecker
    folder = liveness_dir(name)
    fmt = "onnx" if any(folder.glob("*.onnx")) and not any(folder.glob("*.tflite")) else "tflite"
    return LivenessChecker.from_folder(folder, fmt, threshold=threshold, threads=threads)


#: committed embedders (the distilled student), the runtime's default in this order of preference
COMMITTED_EMBEDDERS: tuple[str, ...] = ("facenet-student/facenet-student_fp16.tflite",)  # int8 is slower here: PReLU
#: the committed student in the file type an ONNX Runtime backend runs (`[pipeline] backend =
#: "onnxruntime-openvino"` without an `embedder` uses it: the same network, float32)
COMMITTED_ONNX_EMBEDDER = "facenet-student/facenet-student_fp32.onnx"
#: where `facegate export --model facenet-teacher` puts the teacher export (pass it with --embedder;
#: galleries enrolled with it stay usable with the student, which lives in the teacher's space)
TEACHER_EXPORT = ("exports", "facenet-teacher", "facenet-teacher_fp32.tflite")


def teacher_export_path() -> Path:
    return cache_dir().joinpath(*TEACHER_EXPORT)


def default_embedder_path(backend: str | None = None) -> Path:
    """The embedder the runtime uses when none is named: the committed distilled student (within
    0.3 pt of the teacher on LFW at a 45th of its size and 7x its speed; its card has the numbers,
    docs/benchmarks.md), as the .onnx file when `backend` runs .onnx files. The teacher export stays
    available with --embedder."""
    if backend and suffix_for_backend(backend) == ".onnx" and (MODELS_DIR / COMMITTED_ONNX_EMBEDDER).exists():
        return MODELS_DIR / COMMITTED_ONNX_EMBEDDER
    for rel in COMMITTED_EMBEDDERS:
        if (MODELS_DIR / rel).exists():
            return MODELS_DIR / rel
    path = teacher_export_path()
    if path.exists():
        log.warning("the committed student is missing from this install: using the teacher export %s", path)
        return path
    raise ModelError("no embedding model installed (the committed student is missing from this install: "
                     "reinstall facegate), or pass --embedder MODEL_FILE (with its .json card).")


#: the committed embedders by name (`get_embedder("facenet-student")`)
EMBEDDERS: dict[str, str] = {"facenet-student": COMMITTED_EMBEDDERS[0]}
#: entry-point group through which packages that may use TensorFlow (facegate.convert) serve models the
#: edge runtime cannot open itself (the Keras teacher, .keras files); edge never imports them by name
PROVIDER_GROUP = "facegate.embedders"


def embedder_path(spec: str | Path | None = None, backend: str | None = None) -> Path | None:
    """The model file an embedder spec names (None: the default for `backend`, a committed name or a
    .tflite/.onnx path), or None for a provider's model (the teacher, .keras files) that is not one file here."""
    if spec is None or str(spec) == "":
        return default_embedder_path(backend)
    if str(spec) in EMBEDDERS:
        return MODELS_DIR / EMBEDDERS[str(spec)]
    path = Path(spec)
    return path if path.suffix in (".tflite", ".onnx") or path.is_dir() else None


def get_embedder(spec: str | Path | None = None, threads: int | None = None, backend: str | None = None) -> Embedder:
    """The one way to obtain an embedder, by name or path (like insightface's ``get_model``).

    * None: the runtime default (:func:`default_embedder_path`);
    * a committed name (``facenet-student``) or a model file with its card (.tflite / .onnx);
    * anything else is offered to the installed providers (``facenet-teacher`` and ``.keras`` files come
      from ``facegate.convert`` and need the `convert` extra).
    """
    path = embedder_path(spec, backend)
    if path is not None:
        return Embedder.from_file(path, threads=threads, backend=backend)
    text = str(spec)
    missing = []
    for entry in entry_points(group=PROVIDER_GROUP):
        try:
            provider = entry.load()
        except ImportError as exc:
            missing.append(f"{entry.value.split(':')[0]} ({exc.name} is not installed)")
            continue
        try:
            embedder = provider(text, threads=threads)
        except ImportError as exc:
            missing.append(f"{entry.value.split(':')[0]} ({exc.name} is not installed)")
            continue
        if embedder is not None:
            return embedder
    if missing:
        raise ModelError(f"cannot open model {text!r} with the edge runtime, and the provider that could needs "
                         f"more: {'; '.join(missing)}. Install the workstation extra: pip install 'facegate[convert]'")
    known = ", ".join([*EMBEDDERS, "facenet-teacher"])
    raise ModelError(f"unknown model {text!r}: not one of {known} and no such model file (.tflite/.onnx/.keras "
                     "with its .json card)")


def _preferred_suffix(folder: Path, backend: str | None = None) -> str:
    """The detector file type to load: the forced backend's, else TFLite when a TFLite runtime is
    installed (fastest for these small nets), else ONNX."""
    import importlib.util

    if backend:
        return suffix_for_backend(backend)
    tflite_runtime = any(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "tflite_runtime"))
    if tflite_runtime and (folder / "pnet.tflite").exists():
        return ".tflite"
    if (folder / "pnet.onnx").exists():
        return ".onnx"
    return ".tflite"


def load_detector(name: str = DEFAULT_DETECTOR, fmt: str | None = None, threads: int | None = None,
                  config: CascadeConfig | None = None, backend: str | None = None) -> MTCNN:
    """An MTCNN cascade from a named (committed) model set or a folder, cards verified."""
    folder = detector_dir(name)
    suffix = f".{fmt.lstrip('.')}" if fmt else _preferred_suffix(folder, backend)
    nets, thresholds = [], []
    for net, reference in zip(("pnet", "rnet", "onet"), REFERENCE_THRESHOLDS):
        path = folder / f"{net}{suffix}"
        card = load_card(path)  # refuses a file whose checksum does not match its card
        thresholds.append(float(card.thresholds.get("face", reference)))
        nets.append(load_backend(path, backend=backend, threads=threads))
    return MTCNN(*nets, config=config, name=f"{folder.name}{suffix}", net_thresholds=tuple(thresholds))
