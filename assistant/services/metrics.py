"""Prometheus metrics of one app, in its own registry (several apps can live in one process).

The chat turn runner records every turn here, whichever front end asked (the REST API or the
UI mounted beside it); the API serves them at `/metrics`.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from assistant.turn.schemas import TurnResult

# Text turns take tens of milliseconds, photo turns more, and a busy 2-core host seconds.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """Turn latency by input kind, decisions, escalations, errors by code, turns in progress."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turn_latency = Histogram(
            "shopsight_turn_latency_seconds",
            "Time to answer one chat turn, from the parsed request to the result.",
            ["input"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "shopsight_decisions",
            "Chat turns by the decision taken (answer, clarify, escalate).",
            ["action"],
            registry=self.registry,
        )
        self.escalations = Counter(
            "shopsight_escalations",
            "Chat turns handed over to a human agent.",
            registry=self.registry,
        )
        self.errors = Counter(
            "shopsight_errors",
            "Refused requests of the API and the UI by error code (rate_limited, "
            "input_rejected, ...).",
            ["code"],
            registry=self.registry,
        )
        self.turns_in_progress = Gauge(
            "shopsight_turns_in_progress",
            "Chat turns being computed or waiting for a slot.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "shopsight_ready",
            "1 once the models are loaded and the store answers.",
            registry=self.registry,
        )
        for action in ("answer", "clarify", "escalate"):
            self.decisions.labels(action=action)

    def observe_turn(self, result: TurnResult, seconds: float, input_kind: str) -> None:
        self.turn_latency.labels(input=input_kind).observe(seconds)
        self.decisions.labels(action=result.decision.action).inc()
        if result.decision.action == "escalate":
            self.escalations.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
