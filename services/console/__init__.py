"""console: the web workbench for reps, managers and admins, sign-in, and the people directory."""

SERVICE = "console"
