"""Teacher CLIs (Claude Code, Codex) run inside the sandbox, talking only to the recording
gateway (no Django). See ``external.run_external_agent``."""
from episodes.engine.solve.runners.external import (
    AGENTS_INSTALL_HINT,
    GATEWAY_PORT,
    HARNESSES,
    ExternalRun,
    cli_path,
    missing_cli_message,
    parse_event_lines,
    run_external_agent,
)

__all__ = [
    "AGENTS_INSTALL_HINT",
    "GATEWAY_PORT",
    "HARNESSES",
    "ExternalRun",
    "cli_path",
    "missing_cli_message",
    "parse_event_lines",
    "run_external_agent",
]
