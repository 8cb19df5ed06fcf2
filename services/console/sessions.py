"""Sign-in sessions and failed sign-in counts, kept in the console's schema (so any replica, and a restart, agree).

The cookie carries a random 256-bit token; the table keeps only its SHA-256, so a leaked table row cannot be
replayed as a cookie. A session ends when unused for the idle time, at its maximum age, or on sign-out.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from shared.eventstore import POOL_TIMEOUT, advisory_key

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.sessions (
    token_hash bytea PRIMARY KEY,
    username text NOT NULL,
    csrf text NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    flash jsonb
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON {s}.sessions (username);
CREATE TABLE IF NOT EXISTS {s}.login_failures (
    kind text NOT NULL,
    key text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_by_key ON {s}.login_failures (kind, key, at);
"""

# A session's last use is written at most this often: a page load then costs one read, not a write too.
TOUCH_EVERY = timedelta(seconds=30)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Session:
    token: str
    username: str
    csrf: str
    created_at: datetime
    last_seen: datetime
    flash: dict[str, Any] | None = None


class SessionStore:
    def __init__(self, database_url: str, schema: str, *, idle: timedelta, max_age: timedelta) -> None:
        self.database_url = database_url
        self.schema = sql.Identifier(schema)
        self.idle = idle
        self.max_age = max_age
        self._pool: AsyncConnectionPool | None = None

    async def open(self) -> None:
        pool = AsyncConnectionPool(
            self.database_url,
            min_size=1,
            max_size=8,
            timeout=POOL_TIMEOUT,
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": POOL_TIMEOUT, "row_factory": dict_row},
            open=False,
        )
        await pool.open(wait=True, timeout=10)
        async with pool.connection() as conn:
            key = advisory_key("leadflow-create:console-sessions")
            await conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                await conn.execute(sql.SQL(_DDL).format(s=self.schema))
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> AsyncConnectionPool:
        assert self._pool is not None, "SessionStore.open() first"
        return self._pool

    async def create(self, username: str, now: datetime) -> Session:
        session = Session(new_token(), username, new_token(), now, now)
        async with self.pool.connection() as conn:
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {s}.sessions (token_hash, username, csrf, created_at, last_seen) VALUES (%s, %s, %s, %s, %s)"
                ).format(s=self.schema),
                (_digest(session.token), username, session.csrf, now, now),
            )
        return session

    async def load(self, token: str, now: datetime) -> Session | None:
        """The live session of this cookie; None (and the row gone) when it expired."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL("SELECT username, csrf, created_at, last_seen, flash FROM {s}.sessions WHERE token_hash = %s").format(
                    s=self.schema
                ),
                (_digest(token),),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            if now - row["last_seen"] > self.idle or now - row["created_at"] > self.max_age:
                await conn.execute(
                    sql.SQL("DELETE FROM {s}.sessions WHERE token_hash = %s").format(s=self.schema), (_digest(token),)
                )
                return None
            if now - row["last_seen"] > TOUCH_EVERY:
                await conn.execute(
                    sql.SQL("UPDATE {s}.sessions SET last_seen = %s WHERE token_hash = %s").format(s=self.schema),
                    (now, _digest(token)),
                )
            return Session(token, row["username"], row["csrf"], row["created_at"], row["last_seen"], row["flash"])

    async def end(self, token: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(sql.SQL("DELETE FROM {s}.sessions WHERE token_hash = %s").format(s=self.schema), (_digest(token),))

    async def end_all_of(self, username: str) -> None:
        """Sign a person out everywhere (they were deactivated)."""
        async with self.pool.connection() as conn:
            await conn.execute(sql.SQL("DELETE FROM {s}.sessions WHERE username = %s").format(s=self.schema), (username,))

    async def set_flash(self, session: Session, flash: dict[str, Any] | None) -> None:
        """A message for the next page this session shows (after a redirect)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                sql.SQL("UPDATE {s}.sessions SET flash = %s WHERE token_hash = %s").format(s=self.schema),
                (orjson.dumps(flash).decode() if flash is not None else None, _digest(session.token)),
            )

    # -- failed sign-ins ---------------------------------------------------------------------------

    async def failures(self, username: str, address: str, since: datetime) -> tuple[int, int]:
        """Failed sign-ins since ``since``: for this username, from this address."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE kind = 'user' AND key = %s) AS by_user,"
                    " count(*) FILTER (WHERE kind = 'address' AND key = %s) AS by_address"
                    " FROM {s}.login_failures WHERE at > %s AND ((kind = 'user' AND key = %s) OR (kind = 'address' AND key = %s))"
                ).format(s=self.schema),
                (username, address, since, username, address),
            )
            row = await cur.fetchone()
            return (row["by_user"], row["by_address"]) if row else (0, 0)

    async def record_failure(self, username: str, address: str, now: datetime, forget_before: datetime) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                sql.SQL("INSERT INTO {s}.login_failures (kind, key, at) VALUES ('user', %s, %s), ('address', %s, %s)").format(
                    s=self.schema
                ),
                (username, now, address, now),
            )
            await conn.execute(sql.SQL("DELETE FROM {s}.login_failures WHERE at < %s").format(s=self.schema), (forget_before,))

    async def clear_failures(self, username: str) -> None:
        """A successful sign-in forgets the username's failures (the address's stay: they may be someone else's)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                sql.SQL("DELETE FROM {s}.login_failures WHERE kind = 'user' AND key = %s").format(s=self.schema), (username,)
            )
