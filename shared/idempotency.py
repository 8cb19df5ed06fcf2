"""``Idempotency-Key`` on every state-changing POST: a retry with the same key gets the first answer and
records nothing new.

A client whose request timed out cannot know whether it was applied; with a key it simply sends it
again. The first request with a key claims the key (a row in the service's own schema) before it runs,
and stores its answer when it is done; a retry with the same key and the same request replays that
answer (header ``Idempotent-Replayed: true``); the same key on a different request is refused (422);
a retry while the first is still running is told to wait (409 + ``Retry-After``). Keys are scoped to
the caller (the token's verified subject) and kept for ``RETENTION``. A server error, or an answer carrying
``Retry-After`` (a refusal that says "not yet", such as not-yet-seen or contended), is not stored:
nothing was applied, so a retry runs again. If a process dies between applying a command and storing
its answer, the key stays claimed for ``ABANDONED_AFTER`` and then a retry runs again: that window is
the one place a retry can apply a command twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from datetime import timedelta
from typing import Any

import orjson
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import verify_token
from shared.eventstore import POOL_TIMEOUT, advisory_key
from shared.problems import PROBLEM_JSON, Problem

log = logging.getLogger(__name__)

HEADER = b"idempotency-key"
# A request with a key is read whole before it runs (its fingerprint covers the body); larger ones are refused.
MAX_BODY = 64 * 1024 * 1024
RETENTION = timedelta(hours=24)
ABANDONED_AFTER = timedelta(seconds=60)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, as the IETF draft's examples and every SDK use

_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.idempotency_keys (
    scope text NOT NULL,
    key text NOT NULL,
    fingerprint bytea NOT NULL,
    status integer,
    headers jsonb,
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
)
"""


def _problem(problem: Problem, path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(b"content-type", PROBLEM_JSON.encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (problem.headers or {}).items()]
    return problem.status, headers, orjson.dumps(problem.body(path))


class IdempotencyKeys:
    """ASGI middleware: POSTs carrying ``Idempotency-Key`` are answered once per (caller, key)."""

    def __init__(self, app: ASGIApp, *, database_url: str, schema: str, jwt_secret: str) -> None:
        self.app = app
        self.database_url = database_url
        self.schema = sql.Identifier(schema)
        self.jwt_secret = jwt_secret
        self._pool: AsyncConnectionPool | None = None
        self._ready = asyncio.Lock()
        self._swept_at = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = next((v for k, v in scope["headers"] if k == HEADER), None)
        if key is None:
            await self.app(scope, receive, send)
            return
        caller = self._caller(scope)
        if caller is None:  # no valid token: let the route refuse it as it always does
            await self.app(scope, receive, send)
            return
        text = key.decode("latin-1")
        if not _KEY.match(text):
            problem = Problem(
                422,
                "validation-error",
                "Idempotency-Key must be 1 to 255 printable ASCII characters.",
                errors=[{"field": "Idempotency-Key", "message": "1 to 255 printable ASCII characters"}],
            )
            await self._answer(send, *_problem(problem, scope["path"]))
            return
        body, receive = await _buffered(receive)
        if body is None:
            problem = Problem(413, "content-too-large", f"A request with an Idempotency-Key may carry at most {MAX_BODY} bytes.")
            await self._answer(send, *_problem(problem, scope["path"]))
            return
        fingerprint = hashlib.sha256(scope["path"].encode() + b"?" + scope.get("query_string", b"") + b"\n" + body).digest()
        await self._once(scope, receive, send, caller, text, fingerprint)

    def _caller(self, scope: Scope) -> str | None:
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return verify_token(self.jwt_secret, token.strip()).sub
        except Problem:
            return None

    async def _once(self, scope: Scope, receive: Receive, send: Send, caller: str, key: str, fingerprint: bytes) -> None:
        pool = await self._opened()
        claimed, stored = await self._claim(pool, caller, key, fingerprint)
        if not claimed:
            assert stored is not None
            fingerprint_then, status, headers, body, _age = stored
            if fingerprint_then != fingerprint:
                problem = Problem(
                    422,
                    "idempotency-key-reused",
                    "This Idempotency-Key was used for a different request; use a new key for a new request.",
                )
                await self._answer(send, *_problem(problem, scope["path"]))
            elif status is None:
                problem = Problem(
                    409,
                    "idempotency-key-in-progress",
                    "The first request with this Idempotency-Key is still being handled; try again shortly.",
                    headers={"Retry-After": "1"},
                )
                await self._answer(send, *_problem(problem, scope["path"]))
            else:
                replayed = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
                await self._answer(send, status, [*replayed, (b"idempotent-replayed", b"true")], body)
            return
        status, headers, chunks = 500, [], []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            try:
                await self._settle(pool, caller, key, status, headers, b"".join(chunks))
            except Exception as exc:  # the answer went out; a retry meets a claimed key until it is abandoned
                log.warning("could not store the answer for an idempotency key", extra={"error": repr(exc)})

    async def _claim(
        self, pool: AsyncConnectionPool, caller: str, key: str, fingerprint: bytes
    ) -> tuple[bool, tuple[bytes, int | None, list[list[str]], bytes, float] | None]:
        """Claim the key for this request (True), or what its first request left (False, the row)."""
        async with pool.connection() as conn:
            inserted = await conn.execute(
                sql.SQL(
                    "INSERT INTO {s}.idempotency_keys (scope, key, fingerprint) VALUES (%s, %s, %s)"
                    " ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, created_at = now()"
                    "   WHERE idempotency_keys.status IS NULL AND idempotency_keys.created_at < now() - %s"
                    "     AND idempotency_keys.fingerprint = EXCLUDED.fingerprint"
                    " RETURNING 1"
                ).format(s=self.schema),
                (caller, key, fingerprint, ABANDONED_AFTER),
            )
            if await inserted.fetchone():
                return True, None
            row = await (
                await conn.execute(
                    sql.SQL(
                        "SELECT fingerprint, status, headers, body, extract(epoch FROM now() - created_at)"
                        " FROM {s}.idempotency_keys WHERE scope = %s AND key = %s"
                    ).format(s=self.schema),
                    (caller, key),
                )
            ).fetchone()
        if row is None:  # swept between the two statements: claim it afresh
            return await self._claim(pool, caller, key, fingerprint)
        return False, (bytes(row[0]), row[1], row[2] or [], bytes(row[3] or b""), float(row[4]))

    async def _settle(
        self, pool: AsyncConnectionPool, caller: str, key: str, status: int, headers: list[Any], body: bytes
    ) -> None:
        async with pool.connection() as conn:
            # Not final: a server error (nothing applied, or we cannot tell), or an answer that itself says
            # "try again later" (Retry-After: not seen yet, contended, rate-limited). A retry runs again.
            if status >= 500 or any(k.lower() == b"retry-after" for k, _ in headers):
                await conn.execute(
                    sql.SQL("DELETE FROM {s}.idempotency_keys WHERE scope = %s AND key = %s").format(s=self.schema),
                    (caller, key),
                )
                return
            kept = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers if k.lower() != b"x-correlation-id"]
            await conn.execute(
                sql.SQL(
                    "UPDATE {s}.idempotency_keys SET status = %s, headers = %s, body = %s WHERE scope = %s AND key = %s"
                ).format(s=self.schema),
                (status, orjson.dumps(kept).decode(), body, caller, key),
            )
        await self._sweep(pool)

    async def _sweep(self, pool: AsyncConnectionPool) -> None:
        """Forget keys past their retention (at most once a minute per process)."""
        if time.monotonic() - self._swept_at < 60:
            return
        self._swept_at = time.monotonic()
        async with pool.connection() as conn:
            await conn.execute(
                sql.SQL("DELETE FROM {s}.idempotency_keys WHERE created_at < now() - %s").format(s=self.schema),
                (RETENTION,),
            )

    async def _opened(self) -> AsyncConnectionPool:
        if self._pool is not None:
            return self._pool
        async with self._ready:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    self.database_url,
                    min_size=1,
                    max_size=4,
                    timeout=POOL_TIMEOUT,
                    check=AsyncConnectionPool.check_connection,
                    kwargs={"autocommit": True, "connect_timeout": POOL_TIMEOUT},
                    open=False,
                )
                await pool.open(wait=True, timeout=POOL_TIMEOUT)
                async with pool.connection() as conn:
                    await conn.execute("SELECT pg_advisory_lock(%s)", (advisory_key("leadflow-idempotency"),))
                    try:
                        await conn.execute(sql.SQL(_DDL).format(schema=self.schema))
                    finally:
                        await conn.execute("SELECT pg_advisory_unlock(%s)", (advisory_key("leadflow-idempotency"),))
                self._pool = pool
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @staticmethod
    async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _buffered(receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole request body (None past ``MAX_BODY``), and a ``receive`` that hands it on as one message."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None, receive
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
