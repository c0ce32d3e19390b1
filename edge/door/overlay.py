"""The kiosk overlay: face box, name or "unknown", status line and door state, drawn on a frame."""
from __future__ import annotations

import cv2
import numpy as np

from facegate.edge.detect.face import Face

COLOURS = {"accept": (40, 200, 40), "retry": (0, 200, 255), "reject": (40, 40, 230), "attack": (40, 40, 230),
           "none": (200, 200, 200)}


def draw_overlay(frame_rgb: np.ndarray, face: Face | None, label: str, status: str, door_open: bool,
                 kind: str = "none") -> np.ndarray:
    """BGR image for display or the HTTP snapshot."""
    img = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    colour = COLOURS.get(kind, COLOURS["none"])
    if face is not None:
        x1, y1, x2, y2 = (int(v) for v in face.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
        cv2.putText(img, label, (x1, max(18, y1 - 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2, cv2.LINE_AA)
    h = img.shape[0]
    cv2.rectangle(img, (0, h - 34), (img.shape[1], h), (0, 0, 0), -1)
    door = "DOOR OPEN" if door_open else "LOCKED"
    cv2.putText(img, f"{door}  {status}", (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.65,
                (40, 200, 40) if door_open else (255, 255, 255), 2, cv2.LINE_AA)
    return img
