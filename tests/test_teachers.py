"""Teachers rebuilt from the pinned downloads (fetched into the cache on first run)."""
import numpy as np
import pytest
from conftest import TEACHER_DETECTOR

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def facenet():
    from facegate.edge.registry import get_embedder
    return get_embedder("facenet-teacher")


def test_facenet_rebuild_shape_and_parameters(facenet):
    model = facenet.backend.model
    assert model.input_shape == (None, 160, 160, 3)
    assert model.output_shape == (None, 128)
    assert model.count_params() == 22_808_144
    assert sum(1 for layer in model.layers if layer.weights) == 245


def test_facenet_is_deterministic(facenet):
    crops = np.random.default_rng(0).integers(0, 255, (3, 160, 160, 3), dtype=np.uint8)
    a, b = facenet.embed(crops), facenet.embed(crops)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_facenet_same_person_closer_than_different(facenet, detector, lfw_images):
    from facegate.edge.detect.face import pick_face
    from facegate.edge.face.align import align_face
    from facegate.edge.images import load_rgb

    def emb(path):
        img = load_rgb(path)
        face = pick_face(detector.detect(img), img.shape)
        return facenet.embed(align_face(img, face, 160, "margin32")[None])[0]

    people = list(lfw_images.items())[:3]
    vecs = {name: [emb(p) for p in paths[:2]] for name, paths in people}
    same = [float(v[0] @ v[1]) for v in vecs.values()]
    names = list(vecs)
    diff = [float(vecs[a][0] @ vecs[b][0]) for i, a in enumerate(names) for b in names[i + 1:]]
    assert min(same) > max(diff), f"same {same} vs different {diff}"
    assert min(same) > 0.5 and max(diff) < 0.4


def test_mtcnn_teacher_matches_committed_exports():
    """The committed TFLite/ONNX files are the Keras teacher nets (re-export reproducibility)."""
    from facegate.convert.keras_backend import KerasBackend
    from facegate.convert.teachers.mtcnn import build_teacher
    from facegate.edge.backends import load_backend

    rng = np.random.default_rng(3)
    for net, model in build_teacher().items():
        shape = (2, 40, 52, 3) if net == "pnet" else (3, model.input_shape[1], model.input_shape[2], 3)
        x = rng.normal(size=shape).astype(np.float32)
        ref = KerasBackend(model).run([x])
        for suffix in (".tflite", ".onnx"):
            got = load_backend(TEACHER_DETECTOR / f"{net}{suffix}").run([x])
            for g, r in zip(got, ref):
                np.testing.assert_allclose(g, r, atol=1e-4)


def test_export_writes_cards_and_rejects_nan(tmp_path):
    """Exported files carry cards; a weightless export (the from_concrete_functions trap) is caught."""
    import keras

    from facegate.convert.export.tflite import export_tflite
    from facegate.convert.teachers.export_mtcnn import export_mtcnn_teacher
    from facegate.edge.backends import load_backend
    from facegate.edge.cards import load_card

    written = export_mtcnn_teacher(tmp_path)
    assert len(written) == 12
    for p in written:
        if p.suffix != ".json":
            assert load_card(p).sha256
    # the supported path keeps weights: outputs are finite and equal to Keras
    inp = keras.Input((8,))
    model = keras.Model(inp, keras.layers.Dense(3)(inp))
    path = export_tflite(model, tmp_path / "tiny.tflite")
    x = np.ones((1, 8), np.float32)
    out = load_backend(path).run([x])[0]
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, model(x).numpy(), atol=1e-5)
