"""The Grafana dashboard of curator, generated (generate.py)."""
