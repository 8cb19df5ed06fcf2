"""intake's recorder: the event store plus two index tables written in the same transaction as the events.

- ``<app>_lead_keys`` (match_key, lead_id): the soft-match keys of every captured lead (same WeChat, same
  email, same company + name), to find *possible* duplicates without reading every aggregate;
- ``<app>_import_rows`` (fingerprint, lead_id): every CSV row recorded, so re-importing a file is a no-op.

Both are only ever written by :meth:`IntakeRecorder.insert_events` (``lead_keys=`` / ``import_rows=`` passed
through ``Application.save``), so they can never disagree with the events they index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from shared.eventstore import DedupingProcessRecorder


class IntakeRecorder(DedupingProcessRecorder):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        prefix = self.events_table_name.removesuffix("_events")
        schema = sql.Identifier(self.datastore.schema)
        keys, rows = sql.Identifier(prefix + "_lead_keys"), sql.Identifier(prefix + "_import_rows")
        events = sql.Identifier(self.events_table_name)
        self.sql_create_statements += [
            sql.SQL("CREATE TABLE IF NOT EXISTS {0}.{1} (match_key text, lead_id uuid, PRIMARY KEY (match_key, lead_id))").format(
                schema, keys
            ),
            sql.SQL("CREATE INDEX IF NOT EXISTS {0} ON {1}.{2} (lead_id)").format(
                sql.Identifier(prefix + "_lead_keys_lead_id"), schema, keys
            ),
            sql.SQL("CREATE TABLE IF NOT EXISTS {0}.{1} (fingerprint text PRIMARY KEY, lead_id uuid NOT NULL)").format(
                schema, rows
            ),
        ]
        # Arrays of text (cast in SQL) rather than executemany or arrays of UUID objects: one statement, cheap to send.
        self._insert_keys = sql.SQL(
            "INSERT INTO {0}.{1} (match_key, lead_id) SELECT * FROM unnest(%s::text[], %s::uuid[]) ON CONFLICT DO NOTHING"
        ).format(schema, keys)
        self._insert_rows = sql.SQL(
            "INSERT INTO {0}.{1} (fingerprint, lead_id) SELECT * FROM unnest(%s::text[], %s::uuid[]) ON CONFLICT DO NOTHING"
        ).format(schema, rows)
        self._select_existing = sql.SQL(
            "SELECT originator_id FROM {0}.{1} WHERE originator_id = ANY(%s::uuid[]) AND originator_version = 1"
        ).format(schema, events)
        self._select_matches = sql.SQL("SELECT match_key, lead_id FROM {0}.{1} WHERE match_key = ANY(%s)").format(schema, keys)
        self._select_related = sql.SQL(
            "SELECT other.lead_id, other.match_key FROM {0}.{1} own JOIN {0}.{1} other USING (match_key)"
            " WHERE own.lead_id = %s AND other.lead_id <> %s ORDER BY other.lead_id, other.match_key"
        ).format(schema, keys)
        self._select_rows = sql.SQL("SELECT fingerprint FROM {0}.{1} WHERE fingerprint = ANY(%s)").format(schema, rows)

    def _insert_events(self, curs: Any, stored_events: list[StoredEvent], **kwargs: Any) -> None:
        for statement, pairs in ((self._insert_keys, kwargs.get("lead_keys")), (self._insert_rows, kwargs.get("import_rows"))):
            if pairs:
                curs.execute(statement, ([key for key, _ in pairs], [str(lead_id) for _, lead_id in pairs]))
        super()._insert_events(curs, stored_events, **kwargs)

    def _select(self, query: sql.Composed, params: tuple[Any, ...]) -> list[Any]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, params)
            return curs.fetchall()

    def existing_leads(self, lead_ids: Collection[UUID]) -> set[UUID]:
        """Which of these leads have been captured."""
        if not lead_ids:
            return set()
        return {row["originator_id"] for row in self._select(self._select_existing, ([str(i) for i in lead_ids],))}

    def leads_matching(self, match_keys: Collection[str]) -> dict[str, set[UUID]]:
        """For each key, the captured leads that have it."""
        found: dict[str, set[UUID]] = defaultdict(set)
        if match_keys:
            for row in self._select(self._select_matches, (list(match_keys),)):
                found[row["match_key"]].add(row["lead_id"])
        return found

    def related_leads(self, lead_id: UUID) -> dict[UUID, list[str]]:
        """Other leads sharing a soft-match key with this one, with the kinds of key they share."""
        related: dict[UUID, list[str]] = defaultdict(list)
        for row in self._select(self._select_related, (lead_id, lead_id)):
            related[row["lead_id"]].append(row["match_key"].partition(":")[0])
        return related

    def imported_rows(self, fingerprints: Collection[str]) -> set[str]:
        """Which of these CSV row fingerprints have been recorded."""
        if not fingerprints:
            return set()
        return {row["fingerprint"] for row in self._select(self._select_rows, (list(fingerprints),))}
