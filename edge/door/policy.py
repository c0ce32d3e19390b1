"""The door's decision policy: when does a stream of per-frame match results open the door?

* k-of-n: the same person must be accepted in k of the last n votes (one vote per detection
  frame of the tracked face) — a single lucky frame never opens the door.
* A full window of n votes without k accepts is a failed attempt (reject).
* Cooldown after an accept: the door does not re-trigger for the same person right away.
* Lockout: too many failed attempts within a time window lock the door for a while, whoever shows up.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from facegate.edge.config import within
from facegate.edge.gallery.matching import Decision, MatchResult


@dataclass(frozen=True)
class PolicyConfig:
    k: int = within(3, 1, 100)
    n: int = within(5, 1, 100)
    cooldown_s: float = within(5.0, 0, 3600)
    max_failures: int = within(5, 1, 1000)
    failure_window_s: float = within(60.0, 1, 86400)
    lockout_s: float = within(60.0, 0, 86400)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"need 1 <= k <= n, got k={self.k}, n={self.n}")


@dataclass
class DoorEvent:
    kind: str                      # 'accept' | 'reject' | 'retry' | 'lockout' | 'locked_out'
    person_id: str | None = None
    score: float | None = None
    reason: str = ""


class DoorPolicy:
    def __init__(self, config: PolicyConfig = PolicyConfig()) -> None:
        self.config = config
        self.votes: deque[MatchResult] = deque(maxlen=config.n)
        self.failures: deque[float] = deque()
        self.locked_out_until = 0.0
        self.cooldown_until = 0.0
        self.last_accept: str | None = None

    def reset(self) -> None:
        """The tracked face left: its votes no longer count."""
        self.votes.clear()

    def observe(self, result: MatchResult, now: float) -> DoorEvent | None:
        cfg = self.config
        if now < self.locked_out_until:
            return DoorEvent("locked_out", reason=f"locked out for {self.locked_out_until - now:.0f} s more")
        if now < self.cooldown_until and result.person_id == self.last_accept:
            return None
        self.votes.append(result)
        accepted = [v.person_id for v in self.votes if v.decision is Decision.ACCEPT and v.person_id]
        for pid in set(accepted):
            if accepted.count(pid) >= cfg.k:
                score = max(v.score for v in self.votes if v.person_id == pid and v.decision is Decision.ACCEPT)
                self.votes.clear()
                self.last_accept, self.cooldown_until = pid, now + cfg.cooldown_s
                return DoorEvent("accept", pid, score, f"{cfg.k} of {cfg.n} frames")
        if len(self.votes) < cfg.n:
            return DoorEvent("retry", reason="look at the camera") if result.decision is Decision.RETRY else None
        best = max(self.votes, key=lambda v: v.score)
        self.votes.clear()
        return self.fail(now, best.person_id, best.score, "; ".join(best.reasons) or "not recognised")

    def fail(self, now: float, person_id: str | None, score: float | None, reason: str) -> DoorEvent:
        """Count one failed attempt (a reject, or a failed challenge): a reject, or the lockout when
        there were too many within the window."""
        cfg = self.config
        while self.failures and now - self.failures[0] > cfg.failure_window_s:
            self.failures.popleft()
        self.failures.append(now)
        if len(self.failures) >= cfg.max_failures:
            self.failures.clear()
            self.locked_out_until = now + cfg.lockout_s
            return DoorEvent("lockout", person_id, score,
                             f"{cfg.max_failures} failed attempts within {cfg.failure_window_s:.0f} s")
        return DoorEvent("reject", person_id, score, reason)
