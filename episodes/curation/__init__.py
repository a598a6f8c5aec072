"""Curation: reviews, bulk actions, flaky triage (`actions.py`, `views.py`) and measured difficulty (`difficulty.py`)."""
