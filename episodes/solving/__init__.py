"""Solving: teachers attempt approved bugs (`episodes.py`, `jobs.py` on the `solve` queue), episode pages and imports, and the recording gateway (`gateway/`)."""
