"""The head-turn challenge: synthetic landmark sequences for every outcome, and real photos through the
real detector (a turned face and its mirror image pass; the same still photo fails)."""
import numpy as np
import pytest

from facegate.edge.detect.face import Face
from facegate.edge.door.challenge import HeadTurnChallenge


def _face(yaw: float) -> Face:
    """5 landmarks with the nose offset by `yaw` inter-ocular distances (20 px between the eyes)."""
    pts = np.array([[40, 50], [60, 50], [50 + 20 * yaw, 62], [42, 72], [58, 72]], np.float32)
    return Face(np.array([20, 20, 80, 100], np.float32), 0.99, pts)


def _run(yaws, order, dt=0.2, **kw):
    c = HeadTurnChallenge(0.0, order=order, **kw)
    t = 0.0
    for y in yaws:
        t += dt
        c.observe(None if y is None else _face(y), t)
    return c


def test_turning_as_asked_passes_in_either_order():
    assert _run([0, 0.1, 0.3, 0.1, -0.1, -0.35], ("left", "right")).state == "passed"
    assert _run([0, -0.3, 0, None, 0.4], ("right", "left")).state == "passed"


def test_a_still_face_fails_at_the_time_limit():
    c = _run([0.02] * 60, ("left", "right"), time_limit_s=8.0)           # 12 s of a photo
    assert c.state == "failed" and "within 8 s" in c.reason


def test_the_wrong_turn_fails_at_once_and_order_matters():
    c = _run([0, -0.3], ("left", "right"))
    assert c.state == "failed" and "when asked to turn left" in c.reason
    c = _run([0, 0.3, 0], ("left", "right"))
    assert c.state == "pending" and c.prompt == "turn your head to your right"
    c = _run([0, 0.3, 0, 0.3], ("left", "right"))                        # a replay that only turns left
    assert c.state == "failed" and "when asked to turn right" in c.reason


def test_the_order_is_random():
    orders = {HeadTurnChallenge(0.0).order for _ in range(50)}
    assert orders == {("left", "right"), ("right", "left")}


@pytest.mark.slow
def test_real_photos_a_turned_face_and_its_mirror_pass_a_still_photo_fails(celeb5):
    from facegate.edge.detect.face import pick_face
    from facegate.edge.face.quality import pose_from_landmarks
    from facegate.edge.images import list_images, load_rgb
    from facegate.edge.registry import load_detector
    detector = load_detector()
    measured = []
    for path in list_images(celeb5 / "train" / "ben_afflek") + list_images(celeb5 / "val" / "ben_afflek"):
        rgb = load_rgb(path)
        face = pick_face(detector.detect(rgb), rgb.shape)
        if face is not None:
            measured.append((pose_from_landmarks(face)["yaw"], rgb))
    turned_yaw, turned = min(measured, key=lambda m: m[0])               # most turned to one side
    frontal = min(measured, key=lambda m: abs(m[0]))[1]
    assert turned_yaw < -0.3
    mirror = np.ascontiguousarray(turned[:, ::-1])
    views = {"right": turned, "left": mirror}                              # yaw < 0: the person's right

    def faces(images):
        return [pick_face(detector.detect(img), img.shape) for img in images]
    for order in (("left", "right"), ("right", "left")):
        c = HeadTurnChallenge(0.0, order=order)
        for t, face in enumerate(faces([frontal, views[order[0]], frontal, views[order[1]]])):
            c.observe(face, 0.5 * (t + 1))
        assert c.state == "passed", (order, c.reason)
    c = HeadTurnChallenge(0.0)
    still = faces([frontal])[0]
    for t in range(20):
        c.observe(still, 0.5 * (t + 1))
    assert c.state == "failed"
