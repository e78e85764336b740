"""What every route needs, built once per app and reached through FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security

from assistant.api.auth import ApiKeys, Caller, api_key_header, identify, require
from assistant.api.readiness import Readiness
from assistant.components import Components
from assistant.services.chat import TurnRunner
from assistant.services.metrics import Metrics
from assistant.services.ratelimit import RateLimits
from assistant.settings import Settings


@dataclass
class ApiContext:
    """The app's settings and services; `turns` is shared with the UI mounted on the app."""

    settings: Settings
    components: Components
    keys: ApiKeys
    limits: RateLimits
    metrics: Metrics
    readiness: Readiness
    turns: TurnRunner

    @property
    def max_upload_bytes(self) -> int:
        return int(self.settings.max_upload_mb * 1024 * 1024)


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_caller(
    request: Request,
    context: ContextDep,
    _key: Annotated[str | None, Security(api_key_header)] = None,
) -> Caller:
    return identify(request, context.keys)


CallerDep = Annotated[Caller, Depends(get_caller)]


def get_agent(caller: CallerDep) -> Caller:
    return require(caller, "agent")


def get_admin(caller: CallerDep) -> Caller:
    return require(caller, "admin")


AgentDep = Annotated[Caller, Depends(get_agent)]
AdminDep = Annotated[Caller, Depends(get_admin)]
