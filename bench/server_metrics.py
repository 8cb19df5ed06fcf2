"""What a service says about its own request latency: its ``/metrics`` histogram, read before and after a stage."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

LATENCY = "leadflow_http_request_duration_seconds"


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
