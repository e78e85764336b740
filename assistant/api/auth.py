"""API keys: sent in the `X-API-Key` header, stored only as SHA-256 digests in the settings.

Two roles: `agent` (session history, evidence, and chat without rate limits) and `admin`
(knowledge-base ingestion and stats; an admin key is accepted wherever an agent key is). A
missing key is 401, a key that is wrong or lacks the role is 403. The digest of the sent key is
compared with every configured digest in constant time, so timing reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from fastapi.security import APIKeyHeader

from assistant.api.errors import ApiError

Role = Literal["agent", "admin"]
HEADER = "X-API-Key"
HOW_TO_CONFIGURE = (
    "keys are configured as SHA-256 digests in SHOPSIGHT_API_KEYS (agents) and "
    "SHOPSIGHT_ADMIN_API_KEYS (admins)"
)

# Declares the header in the OpenAPI schema (the "Authorize" button of /docs); checking is ours.
api_key_header = APIKeyHeader(name=HEADER, auto_error=False, description="An agent or admin key.")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    def __init__(self, agent_digests: Iterable[str], admin_digests: Iterable[str]) -> None:
        self._keys: list[tuple[bytes, Role]] = [
            *((d.lower().encode(), "agent") for d in agent_digests),
            *((d.lower().encode(), "admin") for d in admin_digests),
        ]

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def role_of(self, key: str) -> Role | None:
        """The strongest role the key grants, or None; every digest is compared, always."""
        sent = digest(key).encode()
        role: Role | None = None
        for stored, stored_role in self._keys:
            if hmac.compare_digest(sent, stored) and role != "admin":
                role = stored_role
        return role


@dataclass(frozen=True)
class Caller:
    """Who is calling: the role their key grants (None: an anonymous customer) and their address."""

    role: Role | None
    client: str

    @property
    def trusted(self) -> bool:
        return self.role is not None


def identify(request: Request, keys: ApiKeys) -> Caller:
    """The caller; a key that is sent but not valid is refused (403) rather than ignored."""
    client = request.client.host if request.client else "unknown"
    key = request.headers.get(HEADER)
    if key is None or key == "":
        return Caller(None, client)
    role = keys.role_of(key)
    if role is None:
        hint = "" if keys.configured else f"; this server accepts no keys yet: {HOW_TO_CONFIGURE}"
        raise ApiError(403, "invalid_api_key", f"the {HEADER} key is not valid{hint}")
    return Caller(role, client)


def require(caller: Caller, role: Role) -> Caller:
    """Refuse callers without `role` (admin satisfies agent)."""
    if caller.role is None:
        raise ApiError(
            401,
            "api_key_required",
            f"this endpoint needs an {role} API key in the {HEADER} header ({HOW_TO_CONFIGURE})",
            headers={"WWW-Authenticate": f'ApiKey header="{HEADER}"'},
        )
    if role == "admin" and caller.role != "admin":
        raise ApiError(403, "admin_key_required", "this endpoint needs an admin API key")
    return caller
