"""Payment state, pure: the fold over a payment's observations and the decision each
receipt gets. No I/O imports (the worker's store, the reconciler and the bench use it)."""
