"""Posting one signed CloudEvent to a receiver (structured HTTP mode) and saying how it went."""

from __future__ import annotations

from datetime import datetime

import aiohttp

from services.notify.domain.attempts import Answer, retry_after_seconds
from services.notify.domain.subscriptions import secret_key, sign_delivery
from services.notify.guard import AddressGuard, AddressRefused

# Enough of a receiver's answer to show in the delivery log; the rest is not read.
ANSWER_EXCERPT = 512
USER_AGENT = "LeadFlow-Webhooks/1.0"


def _refused(exc: BaseException) -> AddressRefused | None:
    while exc is not None:
        if isinstance(exc, AddressRefused):
            return exc
        exc = getattr(exc, "os_error", None) or exc.__cause__  # type: ignore[assignment]
    return None


class WebhookSender:
    """One HTTP client for every delivery: pooled, kept-alive connections, each opened to a checked address."""

    def __init__(self, guard: AddressGuard, timeout: float, max_connections: int) -> None:
        self.guard = guard
        self.timeout = timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._keys: dict[str, bytes] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, resolver=self.guard.resolver(), use_dns_cache=False, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"user-agent": USER_AGENT},
                auto_decompress=False,
            )
        return self._session

    def _key(self, secret: str) -> bytes:
        key = self._keys.get(secret)
        if key is None:
            key = self._keys[secret] = secret_key(secret)
        return key

    async def post(
        self, url: str, secret: str, message_id: str, body: bytes, now: datetime, previous_secret: str | None = None
    ) -> Answer:
        older = (self._key(previous_secret),) if previous_secret else ()
        headers = sign_delivery(self._key(secret), message_id, int(now.timestamp()), body, *older).as_dict()
        try:
            await self.guard.check(url)
            async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as response:
                excerpt = await response.content.read(ANSWER_EXCERPT)
                error = None if 200 <= response.status < 300 else _excerpt(response.status, excerpt)
                return Answer(
                    status=response.status, error=error, retry_after=retry_after_seconds(response.headers.get("retry-after"))
                )
        except TimeoutError:
            return Answer(failure="timeout", error=f"no answer within {self.timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            refused = _refused(exc)
            if refused is not None:
                return Answer(failure="refused-address", error=str(refused))
            return Answer(failure="connect", error=f"{type(exc).__name__}: {exc}"[:300])
        except Exception as exc:  # anything else is this delivery's trouble, retried and in the end parked, never a crash
            return Answer(failure="connect", error=f"{type(exc).__name__}: {exc}"[:300])

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _excerpt(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return f"HTTP {status}" + (f": {text[:200]}" if text else "")
