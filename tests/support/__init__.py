"""Test support that benchmarks and tools import too (generated images of known truth)."""
