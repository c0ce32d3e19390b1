"""Loopback helpers the server benchmarks share: a free port, and HTTP/1.1 in a few lines on asyncio
streams (a load generator that costs the shared CPU as little as possible; keep-alive or one-shot)."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on at the moment (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def http_once(port: int, head: bytes, body: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await http_request(reader, writer, head, body)
    finally:
        writer.close()


async def http_request(reader, writer, head: bytes, body: bytes) -> tuple[int, bytes]:
    writer.write(head + body)
    await writer.drain()
    status = await reader.readline()
    if not status:
        raise ConnectionError("the server closed the connection")
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return int(status.split()[1]), await reader.readexactly(length)


def start_site_server(folder: Path, port: int, log_path: Path, *extra: str) -> subprocess.Popen:
    """`facegate site serve` on `port` in its own process group (its mosquitto, if any, too), returned once
    it answers /v1/health; RuntimeError with the end of its log if it stops or stays silent for 120 s."""
    cmd = [sys.executable, "-m", "facegate.apps.cli", "site", "serve", "--data", str(folder), "--port", str(port),
           *extra]
    proc = subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the site server stopped: {Path(log_path).read_text()[-2000:]}")
        try:
            status, _ = asyncio.run(http_once(port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", b""))
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    stop_process_group(proc)
    raise RuntimeError("the site server did not answer within 120 s")


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 30 s, and SIGKILL to whatever else is left in its process group."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
