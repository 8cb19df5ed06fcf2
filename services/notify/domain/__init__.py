"""notify's rules, without I/O: subscriptions and their signatures, when to try a delivery again, which addresses
may be reached, who is told what, and when a person wants to hear it."""
