"""The benchmark scripts, run as modules from the repository root (``python -m
benchmarks.accuracy.bench_baselines``); their shared helpers are in :mod:`benchmarks.common`.
"""
