"""followup's domain: the pipeline, the SOP cadence rules and the per-lead LeadFile aggregate (no I/O)."""
