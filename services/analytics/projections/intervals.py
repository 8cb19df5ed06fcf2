"""Periods per lead (ownerships, stays in the pool) built from a batch of facts, pure.

A batch yields the periods it opens (some already closed within the batch) and the closures of
periods opened by an earlier batch. Writing the closures first, then the new periods, leaves the
table as if every fact had been applied one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.analytics.projections.base import Fact

Attrs = dict[str, Any]


@dataclass(slots=True)
class Period:
    lead_id: str
    opened_offset: int
    opened_at: datetime
    opened: Attrs
    closed_at: datetime | None = None
    closed: Attrs = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Closure:
    """Closes the lead's open period from an earlier batch, if it has one."""

    lead_id: str
    closed_at: datetime
    closed: Attrs


def periods(
    facts: Sequence[Fact],
    opens: Callable[[Fact], Attrs | None],
    closes: Callable[[Fact], Attrs | None],
    closed_by_open: Callable[[Fact], Attrs],
) -> tuple[list[Period], list[Closure]]:
    """``opens``/``closes`` say whether a fact starts or ends a period (and with which attributes);
    a fact that opens a period first ends the open one with ``closed_by_open``."""
    new: list[Period] = []
    closures: list[Closure] = []
    open_now: dict[str, Period] = {}
    settled: set[str] = set()  # leads whose period from an earlier batch is already closed here

    def close(fact: Fact, attrs: Attrs) -> None:
        period = open_now.pop(fact.lead_id, None)
        if period is not None:
            period.closed_at, period.closed = fact.time, attrs
        elif fact.lead_id not in settled:
            closures.append(Closure(fact.lead_id, fact.time, attrs))
        settled.add(fact.lead_id)

    for fact in facts:
        if (attrs := closes(fact)) is not None:
            close(fact, attrs)
        if (attrs := opens(fact)) is not None:
            close(fact, closed_by_open(fact))
            period = Period(fact.lead_id, fact.offset, fact.time, attrs)
            open_now[fact.lead_id] = period
            new.append(period)
    return new, closures
