"""Repositories: register, fetch, pin and baseline a codebase (`intake.py`; its pages are `views.py`)."""
