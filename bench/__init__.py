"""Benchmarks that print figures against baselines run side by side; see the README's Performance."""
