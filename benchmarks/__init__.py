"""Benchmarks run by `grin bench`: GRIN against the alternatives, measured by grin_core alone."""
