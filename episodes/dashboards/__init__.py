"""Dashboards: the figures behind /dashboards/ (`figures.py`), cached in Redis."""
