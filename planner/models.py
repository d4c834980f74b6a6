"""Planner models arrive with the planner issue; the app is registered so its migrations have a home."""
