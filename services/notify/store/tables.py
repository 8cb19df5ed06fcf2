"""The tables of notify's schema, and SQL composed for it (``{s}`` is the schema)."""

from __future__ import annotations

from functools import cache

import psycopg
from psycopg import sql

from shared.deadletters import DeadLetterTable
from shared.eventstore import advisory_key

# A delivery's lane is (subscription, lead): deliveries of one lead to one subscription go one at a time, oldest
# (lowest topic offset) first. ``lanes`` holds one row per lane with work waiting: how many deliveries wait and
# when the head may be tried next (also its lease while an attempt is in flight), so finding due work reads only
# lanes, never the backlog behind their heads.
DDL = """
CREATE TABLE IF NOT EXISTS {s}.positions (
    topic text NOT NULL, partition int NOT NULL, next_offset bigint NOT NULL, PRIMARY KEY (topic, partition));

CREATE TABLE IF NOT EXISTS {s}.subscriptions (
    id uuid PRIMARY KEY,
    url text NOT NULL,
    types text[],
    secret text NOT NULL,
    previous_secret text,
    previous_secret_until timestamptz,
    description text,
    state text NOT NULL,
    paused_reason text,
    owner text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    failing_since timestamptz,
    last_success_at timestamptz);

CREATE TABLE IF NOT EXISTS {s}.webhook_events (
    event_id text PRIMARY KEY, lead_key text NOT NULL, type text NOT NULL, time timestamptz NOT NULL, body bytea NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_events_lead ON {s}.webhook_events (lead_key);

CREATE TABLE IF NOT EXISTS {s}.deliveries (
    id bigserial PRIMARY KEY,
    subscription_id uuid NOT NULL,
    event_id text NOT NULL,
    lead_key text NOT NULL,
    type text NOT NULL,
    event_time timestamptz NOT NULL,
    position bigint NOT NULL,
    replay_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    status text NOT NULL DEFAULT 'pending',
    attempts int NOT NULL DEFAULT 0,
    failures int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    first_attempt_at timestamptz,
    last_attempt_at timestamptz,
    next_attempt_at timestamptz,
    last_status int,
    last_error text,
    delivered_at timestamptz,
    UNIQUE (subscription_id, event_id, replay_id));
CREATE INDEX IF NOT EXISTS deliveries_lane ON {s}.deliveries (subscription_id, lead_key, position, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_of ON {s}.deliveries (subscription_id, id);
CREATE INDEX IF NOT EXISTS deliveries_event ON {s}.deliveries (event_id);
CREATE INDEX IF NOT EXISTS deliveries_status ON {s}.deliveries (status, id) WHERE status <> 'delivered';

CREATE TABLE IF NOT EXISTS {s}.lanes (
    subscription_id uuid NOT NULL, lead_key text NOT NULL, pending int NOT NULL, next_attempt_at timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, lead_key));
CREATE INDEX IF NOT EXISTS lanes_due ON {s}.lanes (next_attempt_at);

CREATE TABLE IF NOT EXISTS {s}.attempts (
    delivery_id bigint NOT NULL, attempt int NOT NULL, at timestamptz NOT NULL, status int, error text,
    duration_ms real NOT NULL, PRIMARY KEY (delivery_id, attempt));

CREATE TABLE IF NOT EXISTS {s}.replays (
    id uuid PRIMARY KEY,
    subscription_id uuid NOT NULL,
    from_time timestamptz NOT NULL,
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL,
    state text NOT NULL,
    ends jsonb NOT NULL,
    enqueued bigint NOT NULL DEFAULT 0,
    finished_at timestamptz,
    error text);
CREATE TABLE IF NOT EXISTS {s}.replay_positions (
    replay_id uuid NOT NULL, partition int NOT NULL, next_offset bigint NOT NULL, PRIMARY KEY (replay_id, partition));

CREATE TABLE IF NOT EXISTS {s}.people (
    rep_id text PRIMARY KEY, display_name text NOT NULL, role text NOT NULL, team text, manager text, email text,
    phone text, active boolean NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX IF NOT EXISTS people_team ON {s}.people (team);
CREATE TABLE IF NOT EXISTS {s}.preferences (
    rep_id text PRIMARY KEY, channels text[] NOT NULL, quiet_start time, quiet_end time, digest boolean NOT NULL,
    digest_at time NOT NULL, timezone text NOT NULL, language text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.leads (
    lead_id text PRIMARY KEY, name text, grade text, score int, company text);
CREATE TABLE IF NOT EXISTS {s}.reminders (
    task_id text PRIMARY KEY, lead_id text NOT NULL, rep_id text NOT NULL, title text NOT NULL,
    due_at timestamptz NOT NULL, remind_at timestamptz NOT NULL, state text NOT NULL);
CREATE INDEX IF NOT EXISTS reminders_due ON {s}.reminders (remind_at) WHERE state = 'waiting';

CREATE TABLE IF NOT EXISTS {s}.notices (
    id bigserial PRIMARY KEY,
    dedup_key text NOT NULL UNIQUE,
    recipient text NOT NULL,
    kind text NOT NULL,
    lead_id text,
    params jsonb NOT NULL,
    event_time timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    state text NOT NULL,
    note text);
CREATE INDEX IF NOT EXISTS notices_new ON {s}.notices (id) WHERE state = 'new';
CREATE INDEX IF NOT EXISTS notices_lead ON {s}.notices (lead_id);
CREATE TABLE IF NOT EXISTS {s}.sends (
    id bigserial PRIMARY KEY,
    notice_id bigint NOT NULL,
    recipient text NOT NULL,
    channel text NOT NULL,
    state text NOT NULL,
    not_before timestamptz NOT NULL,
    attempts int NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    sent_at timestamptz,
    last_error text,
    UNIQUE (notice_id, channel));
CREATE INDEX IF NOT EXISTS sends_due ON {s}.sends (not_before) WHERE state = 'due';
CREATE INDEX IF NOT EXISTS sends_digest ON {s}.sends (recipient, created_at) WHERE state = 'digest';
CREATE TABLE IF NOT EXISTS {s}.feed (
    id bigserial PRIMARY KEY, recipient text NOT NULL, notice_id bigint NOT NULL UNIQUE, kind text NOT NULL,
    lead_id text, title text NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL, read_at timestamptz);
CREATE INDEX IF NOT EXISTS feed_of ON {s}.feed (recipient, id);
"""

NIL_REPLAY = "00000000-0000-0000-0000-000000000000"


class Tables:
    """SQL composed for one schema (each statement composed once)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._identifier = sql.Identifier(schema)

    @cache  # noqa: B019 - one Tables per schema for the process' life; statements are few and fixed
    def q(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(s=self._identifier)

    def ensure(self, database_url: str) -> None:
        """Create the schema and its tables if missing (replicas starting together take turns)."""
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (advisory_key(f"leadflow-create:{self.schema}"),))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._identifier))
            conn.execute(self.q(DDL))
            DeadLetterTable(self.schema).create(conn)
