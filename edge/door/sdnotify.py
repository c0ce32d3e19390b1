"""systemd notifications (READY=1, WATCHDOG=1, STATUS=...) without a dependency.

With `WatchdogSec=` in the unit, systemd kills and restarts the door service if the frame loop
stops sending WATCHDOG=1 — and a killed process releases its GPIO line, so the relay drops to
locked. Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
"""
from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(addr)
        sock.sendall(message.encode())
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half the unit's WatchdogSec), or None if not supervised."""
    usec = os.environ.get("WATCHDOG_USEC")
    return int(usec) / 2e6 if usec and usec.isdigit() else None
