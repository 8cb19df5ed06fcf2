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
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from shared.eventstore import DedupingProcessRecorder


@dataclass
class Known:
    leads: set[UUID] = field(default_factory=set)
    matches: defaultdict[str, set[UUID]] = field(default_factory=lambda: defaultdict(set))
    imported_rows: set[str] = field(default_factory=set)


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
        # Arrays sent in binary (%b): one statement, and psycopg dumps them without escaping each element.
        self._insert_keys = sql.SQL(
            "INSERT INTO {0}.{1} (match_key, lead_id) SELECT * FROM unnest(%b::text[], %b::uuid[]) ON CONFLICT DO NOTHING"
        ).format(schema, keys)
        self._insert_rows = sql.SQL(
            "INSERT INTO {0}.{1} (fingerprint, lead_id) SELECT * FROM unnest(%b::text[], %b::uuid[]) ON CONFLICT DO NOTHING"
        ).format(schema, rows)
        # What a capture needs to know before it writes, in one round trip.
        self._select_known = sql.SQL(
            "SELECT 'lead' AS kind, originator_id::text AS key, NULL::uuid AS lead_id FROM {0}.{1}"
            " WHERE originator_id = ANY(%b::uuid[]) AND originator_version = 1"
            " UNION ALL SELECT 'match', match_key, lead_id FROM {0}.{2} WHERE match_key = ANY(%b::text[])"
            " UNION ALL SELECT 'row', fingerprint, NULL FROM {0}.{3} WHERE fingerprint = ANY(%b::text[])"
        ).format(schema, events, keys, rows)
        self._select_related = sql.SQL(
            "SELECT other.lead_id, other.match_key FROM {0}.{1} own JOIN {0}.{1} other USING (match_key)"
            " WHERE own.lead_id = %s AND other.lead_id <> %s ORDER BY other.lead_id, other.match_key"
        ).format(schema, keys)

    def _insert_events(self, curs: Any, stored_events: list[StoredEvent], **kwargs: Any) -> None:
        for statement, pairs in ((self._insert_keys, kwargs.get("lead_keys")), (self._insert_rows, kwargs.get("import_rows"))):
            if pairs:
                curs.execute(statement, ([key for key, _ in pairs], [lead_id for _, lead_id in pairs]))
        super()._insert_events(curs, stored_events, **kwargs)

    def _select(self, query: sql.Composed, params: tuple[Any, ...]) -> list[Any]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, params)
            return curs.fetchall()

    def known(self, lead_ids: Collection[UUID], match_keys: Collection[str], fingerprints: Collection[str]) -> Known:
        """Which of these leads exist, which leads have these soft-match keys, which CSV rows were recorded."""
        known = Known()
        rows = self._select(self._select_known, (list(lead_ids), list(match_keys), list(fingerprints)))
        for row in rows:
            if row["kind"] == "lead":
                known.leads.add(UUID(row["key"]))
            elif row["kind"] == "match":
                known.matches[row["key"]].add(row["lead_id"])
            else:
                known.imported_rows.add(row["key"])
        return known

    def related_leads(self, lead_id: UUID) -> dict[UUID, list[str]]:
        """Other leads sharing a soft-match key with this one, with the kinds of key they share."""
        related: dict[UUID, list[str]] = defaultdict(list)
        for row in self._select(self._select_related, (lead_id, lead_id)):
            related[row["lead_id"]].append(row["match_key"].partition(":")[0])
        return related
