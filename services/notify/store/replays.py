"""A replay: one subscription's events again, read from the start of the topic, from a moment on.

The topic keeps everything, so a replay reads every partition from its beginning up to where it ended when the
replay was asked for (later events reach the subscription live anyway) and queues a delivery, marked with the
replay's id, for each event of a wanted type whose ``time`` is at or after ``from``. Its positions are stored per
partition with the deliveries they queued (exactly once, so a restarted replay goes on where it stopped).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from psycopg_pool import ConnectionPool

from services.notify.domain.subscriptions import wants
from services.notify.store.tables import Tables
from services.notify.store.topic import DeliveryRow, delivery_row, enqueue_deliveries
from shared.clock import Clock
from shared.consumer import Delivered, PartitionBatch
from shared.deadletters import DeadLetter, DeadLetterTable, Entry, PooledDeadLetters


class ReplayWriter(PooledDeadLetters):
    """The position loader and batch handler :class:`shared.consumer.TopicConsumer` takes, for one replay."""

    def __init__(
        self,
        pool: ConnectionPool,
        tables: Tables,
        replay_id: UUID,
        subscription_id: UUID,
        from_time: datetime,
        types: list[str] | None,
        ends: dict[int, int],
        clock: Clock,
    ) -> None:
        self.pool = pool
        self.t = tables
        self.replay_id = replay_id
        self.subscription_id = subscription_id
        self.from_time = from_time
        self.types = frozenset(types) if types else None
        self.ends = ends
        self.clock = clock
        self.dead_letters = DeadLetterTable(tables.schema)

    def load_positions(self, partitions: list[int]) -> dict[int, int | None]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                self.t.q("SELECT partition, next_offset FROM {s}.replay_positions WHERE replay_id = %s"), (self.replay_id,)
            ).fetchall()
        stored = dict(rows)
        return {p: stored.get(p) for p in partitions}

    def handle_batch(self, batches: list[PartitionBatch]) -> int:
        now = self.clock()
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q("SELECT state FROM {s}.replays WHERE id = %s FOR UPDATE"),
                (self.replay_id,),
            )
            row = cur.fetchone()
            if row is None or row[0] != "running":
                return 0  # cancelled (its subscription deleted): read on without queueing; the worker stops it
            rows: list[DeliveryRow] = []
            for batch in batches:
                cur.execute(
                    self.t.q(
                        "INSERT INTO {s}.replay_positions (replay_id, partition, next_offset) VALUES (%s, %s, 0)"
                        " ON CONFLICT DO NOTHING"
                    ),
                    (self.replay_id, batch.partition),
                )
                cur.execute(
                    self.t.q("SELECT next_offset FROM {s}.replay_positions WHERE replay_id = %s AND partition = %s FOR UPDATE"),
                    (self.replay_id, batch.partition),
                )
                stored = cur.fetchone()[0]
                if stored >= batch.next_offset:
                    continue
                end = self.ends.get(batch.partition, 0)
                for item in batch.delivered:
                    if (
                        stored <= item.offset < end
                        and item.envelope.time >= self.from_time
                        and wants(self.types, item.envelope.type)
                    ):
                        rows.append(delivery_row(self.subscription_id, item))
                cur.execute(
                    self.t.q("UPDATE {s}.replay_positions SET next_offset = %s WHERE replay_id = %s AND partition = %s"),
                    (batch.next_offset, self.replay_id, batch.partition),
                )
            added = enqueue_deliveries(cur, self.t, rows, now, replay_id=str(self.replay_id))
            cur.execute(self.t.q("UPDATE {s}.replays SET enqueued = enqueued + %s WHERE id = %s"), (added, self.replay_id))
            return added

    def finish_if_done(self) -> bool:
        """Mark the replay done once every partition has been read to its end (as it was when the replay began)."""
        with self.pool.connection() as conn, conn.transaction():
            rows = conn.execute(
                self.t.q("SELECT partition, next_offset FROM {s}.replay_positions WHERE replay_id = %s"), (self.replay_id,)
            ).fetchall()
            stored = dict(rows)
            if any(stored.get(p, 0) < end for p, end in self.ends.items() if end > 0):
                state = conn.execute(self.t.q("SELECT state FROM {s}.replays WHERE id = %s"), (self.replay_id,)).fetchone()
                return state is None or state[0] != "running"
            conn.execute(
                self.t.q("UPDATE {s}.replays SET state = 'done', finished_at = %s WHERE id = %s AND state = 'running'"),
                (self.clock(), self.replay_id),
            )
            return True

    # --- the replay consumer's dead-letter store: a record the live consumer could not apply either ----------

    def park(self, letter: DeadLetter, next_offset: int) -> bool:
        """Record ``letter`` and move the replay's position on its partition past it, in one transaction."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                self.t.q(
                    "INSERT INTO {s}.replay_positions (replay_id, partition, next_offset) VALUES (%s, %s, 0)"
                    " ON CONFLICT DO NOTHING"
                ),
                (self.replay_id, letter.partition),
            )
            cur.execute(
                self.t.q("SELECT next_offset FROM {s}.replay_positions WHERE replay_id = %s AND partition = %s FOR UPDATE"),
                (self.replay_id, letter.partition),
            )
            if cur.fetchone()[0] >= next_offset:
                return False
            self.dead_letters.insert(cur, [letter])
            cur.execute(
                self.t.q("UPDATE {s}.replay_positions SET next_offset = %s WHERE replay_id = %s AND partition = %s"),
                (next_offset, self.replay_id, letter.partition),
            )
            return True

    def redrive(self, entry: Entry, delivered: Delivered) -> bool:
        """Queue the re-driven event for the replay's subscription (once: deliveries are keyed by event id)."""
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            if not self.dead_letters.resolve(cur, entry.id):
                return False
            enqueue_deliveries(
                cur, self.t, [delivery_row(self.subscription_id, delivered)], self.clock(), replay_id=str(self.replay_id)
            )
            return True
