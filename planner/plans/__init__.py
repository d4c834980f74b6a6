"""Frequency-plans app: stage profiles (uploaded, shipped, or sent by agents), frontiers solved from
them with :mod:`planner.perseus`, their pages, downloads and REST API."""
