"""Progress of a long step: one updating line on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self.started = time.monotonic()
        self._last_line = 0.0
        self.done = 0

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        now = time.monotonic()
        if self.tty:
            if now - self._last_line < 0.1:
                return
            self.stream.write("\r\x1b[K" + self._line(now, note))
        else:
            if now - self._last_line < self.every:
                return
            self.stream.write(self._line(now, note) + "\n")
        self._last_line = now
        self.stream.flush()

    def finish(self, note: str = "") -> None:
        line = self._line(time.monotonic(), note or "done")
        self.stream.write(("\r\x1b[K" if self.tty else "") + line + "\n")
        self.stream.flush()

    def _line(self, now: float, note: str) -> str:
        elapsed = now - self.started
        speed = f" {self.done / elapsed:,.0f}/s" if elapsed > 0 and self.done else ""
        count = f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,}"
        return f"  {self.label}: {count}{speed} [{elapsed:,.1f}s] {note}".rstrip()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
