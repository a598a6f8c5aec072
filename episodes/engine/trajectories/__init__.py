"""Trajectories (no Django): the canonical chat format and its checks (`canonical.py`), importers of other agents' logs (`importers/`)."""
