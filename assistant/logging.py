"""Structured logging: readable lines on a console, JSON lines when SHOPSIGHT_LOG_JSON is set."""

from __future__ import annotations

import logging
import sys

import structlog


class _CurrentStderr:
    """Writes each line to whatever `sys.stderr` is at that moment: a CLI runner or a test may
    swap the stream and close it afterwards, and a logger bound to the old one would then fail."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Configure structlog once; logs go to stderr so `--json` output on stdout stays clean."""
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=lambda *_: _CurrentStderr(),
        cache_logger_on_first_use=False,
    )
