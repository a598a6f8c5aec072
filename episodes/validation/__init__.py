"""Validation: the baseline and verdict jobs on the `verify` queue (`jobs.py`), thin over `engine.validate`."""
