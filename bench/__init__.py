"""Benchmarks (not tests): `python -m bench.bench ...`, `python -m bench.bench_warm_scale ...`."""
