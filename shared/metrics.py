"""Prometheus metrics shared by the services' edges (HTTP, relay, consumers, schedulers).

Names follow Prometheus conventions; ``docs/metrics.md`` lists them. They are defined once per
process on import, as prometheus-client expects, and only ever touched from adapters.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("leadflow_http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram(
    "leadflow_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter(
    "leadflow_events_published_total", "Events published to Kafka by the outbox relay", ["service", "type"]
)
EVENTS_CONSUMED = Counter("leadflow_events_consumed_total", "Events consumed from Kafka and applied", ["service", "type"])
EVENTS_REJECTED = Counter("leadflow_events_rejected_total", "Records that were not valid LeadFlow events", ["service"])
RELAY_BACKLOG = Gauge("leadflow_relay_backlog_events", "Events recorded in the event store but not yet published", ["service"])
RELAY_POSITION = Gauge("leadflow_relay_position", "Last notification id published", ["service"])
CONSUMER_LAG = Gauge(
    "leadflow_consumer_lag_records", "Records on the topic not yet applied, per partition", ["service", "partition"]
)
PROJECTION_FRESHNESS = Gauge(
    "leadflow_projection_freshness_seconds",
    "Age of the newest event applied, measured when it was applied",
    ["service"],
)
SCHEDULER_ACTIONS = Counter(
    "leadflow_scheduler_actions_total", "Time-based actions taken by schedulers", ["service", "action", "reason"]
)
COMMANDS = Counter("leadflow_commands_total", "Domain commands handled, by outcome", ["service", "command", "outcome"])
# Per rep on purpose (the dashboard's follow-ups per rep): bounded by the size of the sales team.
FOLLOW_UPS_LOGGED = Counter(
    "leadflow_follow_ups_logged_total", "Follow-ups recorded, by rep and channel", ["service", "rep_id", "channel"]
)
WORKER_RESTARTS = Counter(
    "leadflow_worker_restarts_total", "Restarts of a background worker after it crashed", ["service", "worker"]
)
WORKER_LAST_PROGRESS = Gauge(
    "leadflow_worker_last_progress_timestamp_seconds",
    "When a background worker last finished a unit of work (or found none to do), Unix time",
    ["service", "worker"],
)
EVENTS_DEAD_LETTERED = Counter(
    "leadflow_events_dead_lettered_total",
    "Records or stored events a worker could not apply and parked (dead-lettered)",
    ["service", "worker", "reason"],
)
# notify: people and systems told (webhooks, e-mail, robots, the console feed).
NOTIFICATIONS_SENT = Counter(
    "leadflow_notifications_sent_total",
    "Notifications delivered, by channel and kind (webhooks: the event type; people: the notice kind)",
    ["service", "channel", "kind"],
)
NOTIFICATION_FAILURES = Counter(
    "leadflow_notification_failures_total",
    "Failed attempts to deliver a notification, by channel and reason",
    ["service", "channel", "reason"],
)
NOTIFICATION_LATENCY = Histogram(
    "leadflow_notification_latency_seconds",
    "From the event's time to its notification delivered, by channel",
    ["service", "channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
NOTIFICATION_QUEUE_DEPTH = Gauge(
    "leadflow_notification_queue_depth",
    "Notifications waiting: webhook deliveries waiting or parked, and messages to people",
    ["service", "queue"],
)
WEBHOOK_ATTEMPT_DURATION = Histogram(
    "leadflow_webhook_attempt_duration_seconds",
    "How long one webhook delivery attempt took (connect, send, answer)",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOKS_PARKED = Counter(
    "leadflow_webhook_deliveries_parked_total",
    "Webhook deliveries given up and parked (re-sendable), by reason",
    ["service", "reason"],
)
WEBHOOK_SUBSCRIPTIONS_PAUSED = Counter(
    "leadflow_webhook_subscriptions_paused_total",
    "Webhook subscriptions paused by notify itself (failing for a day, or the receiver answered 410 Gone)",
    ["service", "reason"],
)
