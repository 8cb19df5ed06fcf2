"""The few HTTP calls the stages make, each failing loudly on an unexpected status."""

from __future__ import annotations

from typing import Any

import httpx

from bench.launcher import Environment


class UnexpectedResponse(RuntimeError):
    def __init__(self, what: str, response: httpx.Response) -> None:
        super().__init__(f"{what}: HTTP {response.status_code} {response.text[:500]}")
        self.status = response.status_code


async def capture_batch(client: httpx.AsyncClient, env: Environment, leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = await client.post(env.url("intake") + "/leads/batch", json=leads, headers=env.headers("integration", "bench"))
    if response.status_code != 200:
        raise UnexpectedResponse("POST /leads/batch", response)
    results = response.json()
    if len(results) != len(leads):
        raise RuntimeError(f"POST /leads/batch answered {len(results)} results for {len(leads)} leads")
    return results


def created_ids(results: list[dict[str, Any]]) -> list[str]:
    """Lead ids of the items intake created; anything else in a bench batch is a failure of the bench input."""
    odd = [r for r in results if r.get("status") != "created"]
    if odd:
        raise RuntimeError(f"{len(odd)} of {len(results)} bench leads were not created, e.g. {odd[0]}")
    return [str(r["lead_id"]) for r in results]


async def capture_one(client: httpx.AsyncClient, env: Environment, lead: dict[str, Any]) -> str:
    response = await client.post(env.url("intake") + "/leads", json=lead, headers=env.headers("integration", "bench"))
    if response.status_code != 201:
        raise UnexpectedResponse("POST /leads", response)
    return str(response.json()["lead_id"])
