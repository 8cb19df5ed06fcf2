"""What a service says about its own request latency: its ``/metrics`` histogram, read before and after a stage."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

LATENCY = "leadflow_http_request_duration_seconds"
BACKLOGS = ("leadflow_consumer_lag", "leadflow_relay_backlog_events")


async def latency_buckets(client: httpx.AsyncClient, base_url: str, method: str, route: str) -> dict[float, float]:
    """Cumulative counts per upper bound (seconds) of one route's server-side latency histogram, now."""
    response = await client.get(base_url + "/metrics")
    response.raise_for_status()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name != LATENCY:
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name == LATENCY + "_bucket" and labels.get("method") == method and labels.get("route") == route:
                buckets[float(labels["le"])] = sample.value
    return buckets


def difference(after: dict[float, float], before: dict[float, float]) -> list[tuple[float, float]]:
    """The buckets of the requests answered between two readings."""
    return sorted((bound, count - before.get(bound, 0.0)) for bound, count in after.items())


async def backlog(client: httpx.AsyncClient, base_url: str) -> float:
    """Events a service has not consumed yet plus events it recorded but has not published yet."""
    response = await client.get(base_url + "/metrics")
    response.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name in BACKLOGS
        for sample in family.samples
    )


async def settle(client: httpx.AsyncClient, base_urls: list[str], timeout: float = 300) -> float:
    """Wait until every service has worked through what it was given (no lag, nothing unpublished, in
    two readings a second apart); returns the seconds waited. Raises TimeoutError after ``timeout``."""
    started = time.monotonic()
    quiet = 0
    while quiet < 2:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"services still busy after {timeout:.0f}s")
        totals = await asyncio.gather(*(backlog(client, url) for url in base_urls))
        quiet = quiet + 1 if sum(totals) == 0 else 0
        await asyncio.sleep(1)
    return time.monotonic() - started
