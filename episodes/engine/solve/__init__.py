"""Solve (no Django): the built-in agent loop and tools (`agent/`), Claude Code / Codex in the sandbox (`runners/`), the tamper-resistant grader (`reward/`), the one task format."""
