"""The carbon side of the planner app: intensity data, per-run emissions, offsets, region advice (Django)."""
