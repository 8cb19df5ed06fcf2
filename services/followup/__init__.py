"""followup: follow-up records, pipeline stages, SOP cadence, tasks and reminders, overdue escalation."""

SERVICE = "followup"
