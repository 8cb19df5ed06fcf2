"""A cheap load generator: many HTTP/1.1 requests fired at one moment over connections opened beforehand.

A general-purpose client (httpx) spends more CPU per request than the server it measures, on the
same cores, and sends a burst one request after another. Here every request is pre-built as raw
bytes, written to its own already-open connection in one tight loop, and its answer is read with
a minimal parser (status line, ``Content-Length`` body). Each latency counts from the common start
moment (just before the first write) to the end of that request's response.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

NO_RESPONSE = 0  # the status recorded for a request whose connection failed before an answer


@dataclass(frozen=True)
class Answer:
    status: int
    seconds: float
    error: str | None = None


def request_bytes(method: str, url: str, headers: dict[str, str]) -> bytes:
    """One body-less HTTP/1.1 request, ready to write."""
    parts = urlsplit(url)
    lines = [f"{method} {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 0"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split(" ", 2)[1])


async def burst(url: str, requests: list[bytes], connect_timeout: float = 10, timeout: float = 60) -> list[Answer]:
    """Open one connection per request, then send all of them at once; one answer per request, in order."""
    parts = urlsplit(url)
    connections = await asyncio.wait_for(
        asyncio.gather(*(asyncio.open_connection(parts.hostname, parts.port) for _ in requests)), connect_timeout
    )
    try:
        started = time.perf_counter()

        async def answer(reader: asyncio.StreamReader) -> Answer:
            try:
                async with asyncio.timeout(timeout):
                    status = await _read_status(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
                return Answer(NO_RESPONSE, time.perf_counter() - started, type(exc).__name__)
            return Answer(status, time.perf_counter() - started)

        readers = [asyncio.ensure_future(answer(reader)) for reader, _ in connections]
        for (_, writer), request in zip(connections, requests, strict=True):
            writer.write(request)
        return list(await asyncio.gather(*readers))
    finally:
        for _, writer in connections:
            writer.close()
