"""analytics: read models over the event log (customer 360, funnel, response time, leaderboard) and replay."""

SERVICE = "analytics"
