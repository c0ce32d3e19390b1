"""Loopback helpers the server benchmarks share: a free port, and HTTP/1.1 in a few lines on asyncio
streams (a load generator that costs the shared CPU as little as possible; keep-alive or one-shot)."""
from __future__ import annotations

import asyncio
import socket


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
