"""Keeping the same face between detections, so the door embeds a person once (and again only
when a better view comes) instead of on every frame.

Detection runs every N frames; detections are matched to tracks by box IoU. Between detections
the last box stands. A track remembers its embedding and the quality of the view it came from;
`needs_embedding` says when a new view is clearly better (or none exists yet).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facegate.edge.detect.boxes import pairwise_overlap
from facegate.edge.detect.face import Face


def view_quality(face: Face) -> float:
    """Bigger, more confident and more frontal faces are better views."""
    lm = face.landmarks
    iod = float(np.linalg.norm(lm[1] - lm[0]))
    yaw = abs(float(lm[2, 0] - (lm[0, 0] + lm[1, 0]) / 2)) / max(iod, 1e-6)
    return iod * face.score * max(0.0, 1.0 - yaw)


@dataclass
class Track:
    id: int
    face: Face
    last_seen: int
    embedding: np.ndarray | None = None
    embedded_quality: float = 0.0

    def needs_embedding(self, improvement: float = 1.15) -> bool:
        return self.embedding is None or view_quality(self.face) > improvement * self.embedded_quality


class IoUTracker:
    def __init__(self, iou_threshold: float = 0.3, max_age: int = 15) -> None:
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, faces: list[Face], frame_index: int) -> list[Track]:
        """Associate this detection frame's faces with existing tracks (greedy by IoU)."""
        unmatched = list(range(len(faces)))
        if self.tracks and faces:
            ov = pairwise_overlap(np.array([t.face.box for t in self.tracks]), np.array([f.box for f in faces]))
            for ti, fi in sorted(np.ndindex(ov.shape), key=lambda ij: -ov[ij]):
                if ov[ti, fi] < self.iou_threshold or fi not in unmatched:
                    continue
                track = self.tracks[ti]
                if track.last_seen == frame_index:
                    continue
                track.face, track.last_seen = faces[fi], frame_index
                unmatched.remove(fi)
        for fi in unmatched:
            self.tracks.append(Track(self._next_id, faces[fi], frame_index))
            self._next_id += 1
        self.tracks = [t for t in self.tracks if frame_index - t.last_seen <= self.max_age]
        return [t for t in self.tracks if t.last_seen == frame_index]
