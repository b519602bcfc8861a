"""Helper modules of the benchmark harness (bench/run.py)."""
