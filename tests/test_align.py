"""Alignment geometry on synthetic points and images."""
import numpy as np
import pytest

from facegate.edge.face.align import TEMPLATE_112, align_similarity, fallback_face, margin_crop, template, umeyama


def _similarity(angle_deg, scale, tx, ty):
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.c_[r, [tx, ty]]


@pytest.mark.parametrize("angle,scale,tx,ty", [(0, 1, 0, 0), (17, 1.7, 30, -12), (-40, 0.4, -5, 80)])
def test_umeyama_recovers_a_known_similarity(angle, scale, tx, ty):
    m = _similarity(angle, scale, tx, ty)
    src = TEMPLATE_112 + np.random.default_rng(1).normal(0, 3, TEMPLATE_112.shape)
    dst = src @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(umeyama(src, dst), m, atol=1e-9)


def test_umeyama_never_reflects():
    src = TEMPLATE_112
    mirrored = src * [-1, 1]
    m = umeyama(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_umeyama_rejects_bad_input():
    with pytest.raises(ValueError):
        umeyama(np.zeros((5, 2)), np.zeros((4, 2)))


def test_template_scales_with_crop_size():
    np.testing.assert_allclose(template(160), TEMPLATE_112 * 160 / 112)


@pytest.mark.parametrize("size", [112, 160])
def test_aligned_crop_puts_landmarks_on_the_template(size):
    """Draw dots at rotated/scaled landmark positions; after alignment they sit on the template."""
    m = _similarity(25, 2.2, 140, 60)
    lms = TEMPLATE_112 @ m[:, :2].T + m[:, 2]
    for k, (x, y) in enumerate(lms):
        img = np.zeros((400, 400, 3), np.uint8)  # one bright dot per image: its centroid is exact
        img[int(round(y)) - 2:int(round(y)) + 3, int(round(x)) - 2:int(round(x)) + 3] = 255
        crop = align_similarity(img, lms, size)
        assert crop.shape == (size, size, 3)
        w = crop[:, :, 0].astype(float)
        assert w.sum() > 0, f"landmark {k} fell outside the crop"
        ys, xs = np.mgrid[0:size, 0:size]
        cx, cy = (w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()
        tx, ty = template(size)[k]
        # the dot was drawn at the rounded position: allow that rounding, scaled into the crop
        assert abs(cx - tx) < 0.5 and abs(cy - ty) < 0.5


def test_margin_crop_grows_box_and_clips_to_image():
    img = np.arange(100 * 120, dtype=np.uint16).reshape(100, 120)
    img = np.stack([img % 256] * 3, axis=2).astype(np.uint8)
    crop = margin_crop(img, np.array([40, 30, 80, 70]), size=60, margin=20)
    np.testing.assert_array_equal(crop, img[20:80, 30:90])  # 40x40 box + 10 px per side, no resize
    edge = margin_crop(img, np.array([0, 0, 30, 30]), size=40, margin=20)
    assert edge.shape == (40, 40, 3)  # clipped to 40x40 at the corner, resized to 40


def test_fallback_face_is_centred():
    f = fallback_face((250, 250, 3))
    assert f.center == pytest.approx((125, 125))
    assert f.landmarks[0, 0] < f.landmarks[1, 0]  # left eye left of right eye
