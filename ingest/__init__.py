"""ingest: the thin aiohttp receiver. Authenticates, publishes with confirms, then answers."""
