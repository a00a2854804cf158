"""Benchmarks that print figures against baselines run side by side; see docs/performance.md."""
