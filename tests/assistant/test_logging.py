"""Log lines go to the stderr of the moment, even after the stream they were configured on closed."""

from __future__ import annotations

import io
import sys

import pytest
import structlog

from assistant.logging import configure_logging


@pytest.mark.unit
def test_logging_survives_the_stream_it_was_configured_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    configure_logging()
    monkeypatch.undo()
    swapped.close()
    structlog.get_logger("test").warning("still_logging", answer=42)
    assert "still_logging" in capsys.readouterr().err
