"""Benchmarks of curator: per-model figures, and for the full and the technical-only graph the
in-process limit of the stage classes and the served graph under closed- and open-loop HTTP load.
Run with `make bench` (see benchmarks/README.md)."""
