"""The worker: consumes envelopes, folds observations into payment state, relays the outbox."""
