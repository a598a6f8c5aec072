"""Injection: batches of planted bugs on the `inject` queue (`batches.py`), issue text (`statements.py`), self-play (`selfplay.py`), and their pages."""
