"""Telemetry app: nodes, GPUs, runs as agents report them, and the ingest path that stores their samples
and rollups."""
