"""notify's PostgreSQL schema: the consumer's positions and what it derived (webhook deliveries, notices to people,
reminders, the directory as notify learnt it), the delivery queues and their logs."""
