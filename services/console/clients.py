"""The console's way to the other services: their HTTP APIs, as the signed-in person.

Each call carries a short-lived JWT minted for that person (``sub`` = username, ``role``), so every service
applies its own rules to them exactly as to any other caller. A refusal (problem+json) becomes
:class:`Refused` with the problem's kind, for the page to say in words; a service that cannot be reached
is a ``service-unavailable`` refusal, never an error page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.auth import Role, mint_token

PROBLEM_PREFIX = "urn:leadflow:problem:"


class Refused(Exception):
    """A service said no (or could not be reached); ``kind`` is the problem type's last part."""

    def __init__(self, status: int, kind: str, detail: str = "", body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {kind}: {detail}")
        self.status = status
        self.kind = kind
        self.detail = detail
        self.body = body or {}


@dataclass(frozen=True)
class Caller:
    username: str
    role: Role


@dataclass
class _Tokens:
    secret: str
    ttl: int
    minted: dict[Caller, tuple[str, float]] = field(default_factory=dict)

    def of(self, caller: Caller) -> str:
        """A token per person, reused for half its life (the services cache verified tokens)."""
        token, fresh_until = self.minted.get(caller, ("", 0.0))
        if time.time() >= fresh_until:
            token = mint_token(self.secret, caller.username, caller.role, self.ttl)
            if len(self.minted) > 10_000:
                self.minted.clear()
            self.minted[caller] = (token, time.time() + self.ttl / 2)
        return token


class Backends:
    def __init__(self, urls: dict[str, str], jwt_secret: str, token_ttl_seconds: int, timeout: float = 10.0) -> None:
        self.urls = urls
        self.tokens = _Tokens(jwt_secret, token_ttl_seconds)
        self.timeout = timeout
        self._clients: dict[str, httpx.AsyncClient] = {}

    async def open(self) -> None:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=20)
        for name, url in self.urls.items():
            self._clients[name] = httpx.AsyncClient(base_url=url, timeout=self.timeout, limits=limits)

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        caller: Caller,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens.of(caller)}"}
        if content_type:
            headers["Content-Type"] = content_type
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = await self._clients[service].request(
                method, path, json=json, params=query, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise Refused(503, "service-unavailable", f"{service}: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise _refusal(service, response)
        return response.json() if response.content else None

    # -- assignment -------------------------------------------------------------------------------

    async def pool(self, caller: Caller, filters: dict[str, str | None], limit: int = 50, cursor: str | None = None) -> Any:
        return await self.call("assignment", "GET", "/pool", caller, params={**filters, "limit": limit, "cursor": cursor})

    async def rep_leads(self, caller: Caller, rep_id: str, limit: int = 200, cursor: str | None = None) -> Any:
        return await self.call("assignment", "GET", f"/reps/{rep_id}/leads", caller, params={"limit": limit, "cursor": cursor})

    async def all_rep_leads(self, caller: Caller, rep_id: str, most: int = 1000) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while len(items) < most:
            page = await self.rep_leads(caller, rep_id, cursor=cursor)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items

    async def ownership(self, caller: Caller, lead_id: str) -> Any:
        return await self.call("assignment", "GET", f"/leads/{lead_id}/ownership", caller)

    async def claim(self, caller: Caller, lead_id: str) -> Any:
        return await self.call("assignment", "POST", f"/leads/{lead_id}/claim", caller)

    async def release(self, caller: Caller, lead_id: str) -> Any:
        return await self.call("assignment", "POST", f"/leads/{lead_id}/release", caller)

    async def assign(self, caller: Caller, lead_id: str, rep_id: str) -> Any:
        return await self.call("assignment", "POST", f"/leads/{lead_id}/assign", caller, json={"rep_id": rep_id})

    async def offboard(self, caller: Caller, rep_id: str, transfer_to: str | None) -> Any:
        return await self.call("assignment", "POST", f"/reps/{rep_id}/offboard", caller, json={"transfer_to": transfer_to})

    # -- followup ---------------------------------------------------------------------------------

    async def tasks(self, caller: Caller, **params: Any) -> list[dict[str, Any]]:
        page = await self.call("followup", "GET", "/tasks", caller, params={"limit": 200, **params})
        return page["items"]

    async def log_follow_up(self, caller: Caller, lead_id: str, body: dict[str, Any], idempotency_key: str | None = None) -> Any:
        path = f"/leads/{lead_id}/follow-ups"
        return await self.call("followup", "POST", path, caller, json=body, idempotency_key=idempotency_key)

    async def complete_task(self, caller: Caller, task_id: str) -> Any:
        return await self.call("followup", "POST", f"/tasks/{task_id}/complete", caller)

    # -- analytics --------------------------------------------------------------------------------

    async def customer(self, caller: Caller, lead_id: str) -> Any:
        return await self.call("analytics", "GET", f"/customers/{lead_id}", caller)

    async def report(self, caller: Caller, name: str, params: dict[str, Any]) -> Any:
        return await self.call("analytics", "GET", f"/{name}", caller, params=params)

    # -- intake -----------------------------------------------------------------------------------

    async def capture(self, caller: Caller, body: dict[str, Any]) -> Any:
        return await self.call("intake", "POST", "/leads", caller, json=body)

    async def lead(self, caller: Caller, lead_id: str) -> Any:
        return await self.call("intake", "GET", f"/leads/{lead_id}", caller)

    async def import_csv(self, caller: Caller, body: bytes, content_type: str) -> Any:
        return await self.call("intake", "POST", "/leads/import", caller, content=body, content_type=content_type)


def _refusal(service: str, response: httpx.Response) -> Refused:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    kind = str(body.get("type", "")).removeprefix(PROBLEM_PREFIX) or f"http-{response.status_code}"
    if response.status_code == 401:
        kind = "unauthorized"
    return Refused(response.status_code, kind, str(body.get("detail") or body.get("title") or service), body)
