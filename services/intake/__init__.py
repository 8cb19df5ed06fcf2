"""intake: capture leads from every channel, normalise, reject duplicates, score and grade."""

SERVICE = "intake"
