"""A cheap load generator: many HTTP/1.1 requests fired at one moment over keep-alive connections opened beforehand.

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
from types import TracebackType
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
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(f"not an HTTP response: {status_line!r}")
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding":
            raise ValueError("a chunked response (this client reads Content-Length bodies only)")
    await reader.readexactly(length)
    return int(rest[:3])


class Burst:
    """``size`` keep-alive connections to one server; :meth:`fire` sends one request on each at once."""

    def __init__(self, url: str, size: int, timeout: float = 60) -> None:
        self.url = url
        self.size = size
        self.timeout = timeout
        self._connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> Burst:
        parts = urlsplit(self.url)
        opening = (asyncio.open_connection(parts.hostname, parts.port) for _ in range(self.size))
        self._connections = list(await asyncio.wait_for(asyncio.gather(*opening), self.timeout))
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        for _, writer in self._connections:
            writer.close()

    async def fire(self, requests: list[bytes]) -> list[Answer]:
        """One request per connection, all written in one go; the answers in the same order.

        A connection that failed is replaced before the next burst, so one failure costs one answer.
        """
        if len(requests) != self.size:
            raise ValueError(f"{len(requests)} requests for {self.size} connections")
        started = time.perf_counter()

        async def answer(reader: asyncio.StreamReader) -> Answer:
            try:
                async with asyncio.timeout(self.timeout):
                    status = await _read_status(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
                return Answer(NO_RESPONSE, time.perf_counter() - started, type(exc).__name__)
            return Answer(status, time.perf_counter() - started)

        readers = [asyncio.ensure_future(answer(reader)) for reader, _ in self._connections]
        for (_, writer), request in zip(self._connections, requests, strict=True):
            writer.write(request)
        answers = list(await asyncio.gather(*readers))
        await self._replace_failed(answers)
        return answers

    async def _replace_failed(self, answers: list[Answer]) -> None:
        parts = urlsplit(self.url)
        for n, answer in enumerate(answers):
            if answer.error is not None:
                self._connections[n][1].close()
                self._connections[n] = await asyncio.open_connection(parts.hostname, parts.port)
