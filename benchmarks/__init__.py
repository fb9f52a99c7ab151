"""Benchmarks of curator: the in-process limit of the stage classes, and the served graph under a
closed-loop HTTP load. Run with `make bench` (see benchmarks/README.md)."""
