"""Acme, a throwaway fifth provider, built the way README's "Adding a provider" says: its
folder (``scheme.py``, ``adapter.py``, ``status.py``, as ``providers/<name>/``), its
simulator (``simulator.py``, as ``simulator/<name>.py``), its fixtures (``fixtures/``) and
one registry line (tests/unit/test_fake_provider.py). Nothing of paysync changes for it."""
