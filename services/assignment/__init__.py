"""assignment: who owns each lead — claims (报备), protection, the public pool (公海), recycling, automatic assignment."""

SERVICE = "assignment"
