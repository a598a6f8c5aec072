"""Repositories (no Django): environment inference from a checkout (`detect.py`) and the sample repository (`samples.py`)."""
