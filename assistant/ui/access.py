"""Who may use the staff tabs: the same agent/admin keys as the REST API, when any are set.

Without configured keys (a local demo) the agent console and the knowledge-base tools are open,
as the REST API's agent routes are then unusable anyway; with keys, each staff action needs one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import gradio as gr

if TYPE_CHECKING:
    from assistant.settings import Settings

StaffRole = Literal["agent", "admin"]


class StaffGate:
    def __init__(self, settings: Settings) -> None:
        from assistant.api.auth import ApiKeys

        self.keys = ApiKeys(settings.api_keys, settings.admin_api_keys)

    @property
    def required(self) -> bool:
        return self.keys.configured

    def allows(self, key: str | None, role: StaffRole) -> bool:
        if not self.required:
            return True
        granted = self.keys.role_of(key or "")
        return granted == "admin" or granted == role

    def check(self, key: str | None, role: StaffRole) -> None:
        """Raise a UI error unless `key` grants `role` (an admin key grants both)."""
        if self.allows(key, role):
            return
        what = "an admin key" if role == "admin" else "an agent or admin key"
        raise gr.Error(f"This needs {what}: enter it in the 'Staff key' field above.")

    def key_box(self) -> gr.Textbox:
        """The key field (hidden when no keys are configured)."""
        return gr.Textbox(
            label="Staff key",
            type="password",
            placeholder="agent or admin API key",
            elem_id="staff-key",
            visible=self.required,
        )
