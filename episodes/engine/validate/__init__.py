"""Validate (no Django): the verdict (`validator.py`), flakiness and its stop rule, the pytest plugin runs load and its report, the coverage map, parallel verifier runs."""
