"""How much work each stage does: the issue's sizes for a full run, small ones for ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class Sizes:
    kafka_events: int = 100_000  # raw produce → consume, ~1 KB each
    kafka_latency_events: int = 2_000  # paced, for the latency baseline
    kafka_latency_rate: int = 500
    pg_rows: int = 100_000  # executemany and COPY each
    es_single_saves: int = 2_000  # eventsourcing: one event per save
    es_batch_saves: int = 20  # eventsourcing: 1,000 events per save
    capture_leads: int = 20_000  # POST /leads/batch, accepted → published
    single_posts: int = 2_000  # POST /leads, open-loop
    single_rate: int = 100
    claim_trials: int = 30
    claimers: int = 100
    freshness_rates: list[int] = field(default_factory=lambda: [200, 500, 1_000])
    freshness_seconds: float = 30.0
    freshness_probes_per_second: float = 2.0
    replay_events: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    parking_events: int = 50_000  # consumed with vs without the parking machinery (3 rounds each)
    scaling_leads: list[int] = field(default_factory=lambda: [10_000, 100_000, 1_000_000])
    scaling_window: int = 5_000  # leads captured to measure the per-lead cost at each size
    tick_leads: list[int] = field(default_factory=lambda: [10_000, 100_000, 1_000_000])
    tick_due: int = 100
    notify_deliveries: int = 20_000  # webhooks queued, then delivered to a local receiver
    notify_rate: int = 200  # events/s offered for the event → notification latency
    notify_seconds: float = 30.0


QUICK = Sizes(
    kafka_events=5_000,
    kafka_latency_events=500,
    pg_rows=5_000,
    es_single_saves=300,
    es_batch_saves=3,
    capture_leads=2_000,
    single_posts=300,
    claim_trials=10,
    freshness_seconds=5.0,
    replay_events=[1_000],
    parking_events=5_000,
    scaling_leads=[3_000, 6_000],
    scaling_window=500,
    tick_leads=[1_000, 5_000],
    notify_deliveries=2_000,
    notify_seconds=5.0,
)


def size_names() -> list[str]:
    return [f.name for f in fields(Sizes)]
