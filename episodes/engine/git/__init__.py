"""Git (no Django): mirrors, worktrees, `git apply` and the one diff writer (`workspace.py`); the one diff reader, unidiff (`patches.py`)."""
