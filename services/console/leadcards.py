"""Leads as lists show them: assignment's ownership rows with the customer's name and company from intake.

assignment's lists carry no personal data, so each row's profile is asked of intake (concurrently, as the
person looking, and kept a minute per person). In the pool a rep sees names and phones masked.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.console.clients import Backends, Caller, Refused

KEEP_SECONDS = 60.0
CONCURRENCY = 16
MOST_KEPT = 20_000


def mask_phone(phone: str | None) -> str:
    if not phone:
        return "—"
    digits = phone.removeprefix("+86")
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else "****"


def mask_name(name: str | None) -> str:
    if not name:
        return "—"
    return name[0] + "*" * max(1, min(len(name) - 1, 3))


class LeadCards:
    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self._kept: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}

    async def profiles(self, caller: Caller, lead_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        found: dict[str, dict[str, Any] | None] = {}
        wanted: list[str] = []
        now = time.monotonic()
        for lead_id in lead_ids:
            kept = self._kept.get((caller.username, lead_id))
            if kept and now - kept[0] < KEEP_SECONDS:
                found[lead_id] = kept[1]
            else:
                wanted.append(lead_id)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def fetch(lead_id: str) -> None:
            async with gate:
                try:
                    record = await self.backends.lead(caller, lead_id)
                except Refused:
                    record = None
            found[lead_id] = record
            if len(self._kept) > MOST_KEPT:
                self._kept.clear()
            self._kept[(caller.username, lead_id)] = (time.monotonic(), record)

        await asyncio.gather(*(fetch(lead_id) for lead_id in wanted))
        return found

    async def cards(self, caller: Caller, rows: list[dict[str, Any]], *, masked: bool) -> list[dict[str, Any]]:
        known = await self.profiles(caller, [row["lead_id"] for row in rows])
        result = []
        for row in rows:
            record = known.get(row["lead_id"]) or {}
            name, phone = record.get("name"), record.get("phone")
            result.append(
                {
                    **row,
                    "name": mask_name(name) if masked else (name or "—"),
                    "phone": mask_phone(phone) if masked else (phone or "—"),
                    "company": record.get("company") or "—",
                }
            )
        return result
