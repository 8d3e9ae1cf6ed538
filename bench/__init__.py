"""Benchmarks of paysync against baselines measured in the same run (``python -m bench``).

Each pair runs paysync and a bare baseline doing the same external work, alternately, on
the same machine, so the ratio paysync/baseline cancels most of the machine's noise.
"""
