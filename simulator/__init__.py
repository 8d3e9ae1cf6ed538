"""Fake providers: callbacks signed exactly as each provider signs them, for tests and demos."""
