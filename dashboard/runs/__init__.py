"""Runs app: what people read about runs — the runs list, run and GPU pages, compare, CSV exports,
Prometheus ``/metrics`` and the runs part of the REST API. It only reads what telemetry stores."""
