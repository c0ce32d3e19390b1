"""Active liveness for high-security doors: after the face is recognised (and passed the passive
check), the kiosk asks the person to turn the head to one side, then to the other, in a random order;
the yaw read from the 5 landmarks (facegate.edge.face.quality.pose_from_landmarks) must follow each
prompt within the time limit. A printed photo or a still replay cannot turn its head; a video replay
would have to turn the right way at the right moment, twice, in an order it cannot know in advance.

Yaw > 0: the nose is towards the image's right, i.e. the head turned to the person's own left (the
camera faces the person). Prompts name the person's own left and right.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from facegate.edge.detect.face import Face
from facegate.edge.face.quality import pose_from_landmarks

SIDES = {"left": 1.0, "right": -1.0}


@dataclass
class HeadTurnChallenge:
    """One challenge: two turns in random order, each beyond `turn_yaw`, all within `time_limit_s`.
    A turn the wrong way beyond the threshold fails at once (guessing is not allowed)."""

    started: float
    turn_yaw: float = 0.25
    time_limit_s: float = 8.0
    order: tuple[str, ...] = field(default_factory=lambda: tuple(random.SystemRandom().sample(list(SIDES), 2)))
    step: int = 0
    state: str = "pending"           # pending | passed | failed
    reason: str = ""

    @property
    def prompt(self) -> str:
        if self.state == "passed":
            return "thank you"
        if self.state == "failed":
            return "challenge failed"
        return f"turn your head to your {self.order[self.step]}"

    def observe(self, face: Face | None, now: float) -> str:
        """Feed one detection frame's subject face (None: nobody); returns the state."""
        if self.state != "pending":
            return self.state
        if now - self.started > self.time_limit_s:
            return self.fail(f"no {self.order[self.step]} turn within {self.time_limit_s:.0f} s")
        if face is None:
            return self.state
        yaw = pose_from_landmarks(face)["yaw"]
        wanted = SIDES[self.order[self.step]]
        if yaw * wanted >= self.turn_yaw:
            self.step += 1
            if self.step == len(self.order):
                self.state = "passed"
        elif yaw * -wanted >= self.turn_yaw:
            return self.fail(f"turned {'left' if yaw > 0 else 'right'} when asked to turn {self.order[self.step]}")
        return self.state

    def fail(self, reason: str) -> str:
        """End the challenge as failed (also from outside: the person left, someone else stepped in)."""
        self.state, self.reason = "failed", reason
        return self.state
