"""Benchmarks, run as scripts (``python bench/bench_x.py``); shared fixtures live as modules."""
