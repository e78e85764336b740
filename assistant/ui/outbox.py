"""Messages a human agent sends from the console, waiting to be shown in the customer's chat.

The UI runs in the same process as the engine, so a lock-protected dict is enough; the chat
polls it. Messages are kept for the console's transcript until the session is deleted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class AgentMessage:
    text: str
    after_turn: int
    """How many turns the conversation had when the agent sent it (where it sits in the log)."""


class AgentOutbox:
    def __init__(self) -> None:
        self._messages: dict[str, list[AgentMessage]] = {}
        self._lock = threading.Lock()

    def send(self, session_id: str, text: str, after_turn: int) -> AgentMessage:
        message = AgentMessage(text=text, after_turn=after_turn)
        with self._lock:
            self._messages.setdefault(session_id, []).append(message)
        return message

    def messages(self, session_id: str) -> list[AgentMessage]:
        with self._lock:
            return list(self._messages.get(session_id, []))

    def since(self, session_id: str, seen: int) -> list[AgentMessage]:
        """The messages after the first `seen` ones (what a chat has not shown yet)."""
        return self.messages(session_id)[seen:]

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._messages.pop(session_id, None)
