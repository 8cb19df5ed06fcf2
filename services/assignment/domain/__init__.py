"""assignment's domain model: aggregates, their rules and their errors; no I/O, time passed in."""
