"""The agent console: live conversations, sentiment trend, decisions, suggested replies, evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd
from PIL import Image

from assistant.turn.schemas import EvidencePack, TurnResult
from assistant.ui.access import StaffGate
from assistant.ui.render import (
    attributions_html,
    decision_html,
    reply_message,
    suggestion_choices,
    ticket_html,
)

if TYPE_CHECKING:
    from assistant.components import Components

POLL_SECONDS = 4.0
SESSION_LIMIT = 50
EVIDENCE_WAIT_S = 8.0
_NO_SESSION = "Pick a conversation above to see it here."


@dataclass
class SessionView:
    """Everything the console shows about one conversation (its latest turn in detail)."""

    transcript: list[dict[str, Any]] = field(default_factory=list)
    trend: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"turn": [], "value": [], "series": []})
    )
    decision: str = _NO_SESSION
    ticket: str = ""
    suggestions: list[tuple[str, str]] = field(default_factory=list)
    turns: list[tuple[str, str]] = field(default_factory=list)
    """(label, evidence id) per turn, oldest first."""
    marker: tuple[int, int] = (0, 0)
    """(turns, agent messages): what changes when the conversation moves on."""


@dataclass
class EvidenceView:
    """One turn's evidence as shown; `state` is the pack's status, or "" when there is none."""

    status: str
    shap: str
    heatmaps: list[tuple[Image.Image, str]]
    state: str


def trend_frame(results: list[TurnResult]) -> pd.DataFrame:
    """Per turn: the message's sentiment score and the session's running trend."""
    rows = []
    for number, result in enumerate(results, start=1):
        # Zero-padded labels: whole turns on the axis, in order (the axis sorts them as text).
        turn = f"{number:02d}"
        rows.append({"turn": turn, "value": result.sentiment.score, "series": "message"})
        rows.append({"turn": turn, "value": result.sentiment.trend, "series": "trend"})
    return pd.DataFrame(rows or {"turn": [], "value": [], "series": []})


def evidence_status(pack: EvidencePack | None) -> str:
    if pack is None:
        return "No evidence for this turn."
    if pack.status == "pending":
        return "**Computing** the explanation of this turn (SHAP and Grad-CAM)…"
    if pack.status == "failed":
        return f"**The explanation failed:** {pack.error}"
    found = []
    if pack.attributions:
        found.append(f"{len(pack.attributions)} SHAP explanation(s)")
    if pack.heatmaps:
        found.append(f"{len(pack.heatmaps)} Grad-CAM heatmap(s)")
    what = ", ".join(found) or "nothing to explain (no text and no photo)"
    return f"**Evidence ready** ({pack.seconds:.1f} s): {what}."


class AgentConsole:
    """Event handlers of the console; reads memory and evidence through `Components`."""

    def __init__(self, components: Components, gate: StaffGate) -> None:
        self.components = components
        self.gate = gate

    # --- conversations ---------------------------------------------------------------------

    def session_choices(self) -> list[tuple[str, str]]:
        choices = []
        for session_id, updated, state in self.components.memory.sessions(SESSION_LIMIT):
            flags = [f"{state.turn_count} turn{'s' if state.turn_count != 1 else ''}"]
            flags.append(state.language)
            if state.escalated:
                flags.append("ESCALATED")
            choices.append((f"{session_id} · {' · '.join(flags)} · {updated:%H:%M:%S}", session_id))
        return choices

    def list_sessions(self, key: str | None) -> tuple[Any, list[tuple[str, str]]]:
        self.gate.check(key, "agent")
        choices = self.session_choices()
        return gr.Dropdown(choices=choices), choices

    def on_open(self, key: str | None) -> tuple[Any, Any]:
        """Opening the tab lists the conversations, silently doing nothing without a key."""
        if not self.gate.allows(key, "agent"):
            return gr.skip(), gr.skip()
        return self.list_sessions(key)

    def session_view(self, session_id: str | None) -> SessionView:
        if not session_id:
            return SessionView()
        evidence = self.components.evidence
        records = self.components.memory.history(session_id)
        results = [TurnResult.model_validate(r.result) for r in records]
        sent = self.components.memory.agent_replies(session_id)
        transcript: list[dict[str, Any]] = []
        turns = []
        for record, result in zip(records, results, strict=True):
            photo = evidence.has_photo(record.evidence_id)
            text = ("[photo] " if photo else "") + record.text
            transcript.append({"role": "user", "content": text or "(empty)"})
            transcript.append(
                {
                    "role": "assistant",
                    "content": reply_message(result.reply, result.citations, result.language),
                }
            )
            transcript.extend(
                {"role": "assistant", "content": f"**Agent:** {m.text}"}
                for m in sent
                if m.after_turn == record.index + 1
            )
            preview = record.text[:40] + ("…" if len(record.text) > 40 else "")
            turns.append(
                (
                    f"Turn {record.index + 1}{' [photo]' if photo else ''}: {preview} "
                    f"→ {result.decision.action}",
                    record.evidence_id,
                )
            )
        if not results:
            return SessionView(decision="This conversation has no turns yet.")
        last = results[-1]
        return SessionView(
            transcript=transcript,
            trend=trend_frame(results),
            decision=decision_html(
                last.decision,
                last.intent.intent,
                last.intent.confidence,
                last.sentiment.label,
                last.sentiment.score,
                last.summary,
            ),
            ticket=ticket_html(last.ticket),
            suggestions=suggestion_choices(last.suggested_replies),
            turns=turns,
            marker=(len(records), len(sent)),
        )

    def show_session(self, key: str | None, session_id: str | None) -> tuple[Any, ...]:
        self.gate.check(key, "agent")
        view = self.session_view(session_id)
        latest = view.turns[-1][1] if view.turns else None
        return (
            view.transcript,
            view.trend,
            view.decision,
            view.ticket,
            gr.Radio(choices=view.suggestions, value=None),
            "",
            gr.Dropdown(choices=view.turns, value=latest),
            {"session": session_id, "marker": list(view.marker)},
        )

    def send(self, key: str | None, session_id: str | None, draft: str) -> tuple[Any, ...]:
        """Send the (possibly edited) reply to the customer's chat."""
        self.gate.check(key, "agent")
        text = (draft or "").strip()
        if not session_id:
            raise gr.Error("Pick a conversation first.")
        if not text:
            raise gr.Error("The reply is empty: pick a suggestion or type one.")
        if self.components.memory.add_agent_reply(session_id, text) is None:
            raise gr.Error("That conversation no longer exists.")
        gr.Info("Sent to the customer.")
        view = self.session_view(session_id)
        return view.transcript, "", {"session": session_id, "marker": list(view.marker)}

    # --- evidence ----------------------------------------------------------------------------

    def evidence_view(self, evidence_id: str | None, wait_s: float = 0.0) -> EvidenceView:
        if not evidence_id:
            return EvidenceView("", "", [], "")
        service = self.components.evidence
        pack = service.wait(evidence_id, wait_s) if wait_s > 0 else service.get(evidence_id)
        if pack is None:
            return EvidenceView(evidence_status(None), "", [], "")
        parts = [
            (f"{a.target.capitalize()}" + (f" (model {a.model})" if a.model else ""), a.html)
            for a in pack.attributions
        ]
        heatmaps = []
        for view in pack.heatmaps:
            path = service.listed_heatmap(pack, view.file)
            if path is None:
                continue
            with Image.open(path) as image:
                heatmaps.append((image.convert("RGB"), f"{view.title} (score {view.score:.2f})"))
        return EvidenceView(evidence_status(pack), attributions_html(parts), heatmaps, pack.status)

    def show_evidence(self, key: str | None, evidence_id: str | None) -> tuple[Any, ...]:
        self.gate.check(key, "agent")
        view = self.evidence_view(evidence_id, wait_s=EVIDENCE_WAIT_S)
        return view.status, view.shap, view.heatmaps, view.state

    # --- live refresh ------------------------------------------------------------------------

    def tick(
        self,
        key: str | None,
        live: bool,
        session_id: str | None,
        listed: list[Any] | None,
        shown: dict[str, Any] | None,
        evidence_id: str | None,
        evidence_state: str,
    ) -> tuple[Any, ...]:
        """Refresh what changed: the list of conversations, the open one, a pending pack."""
        skip = gr.skip()
        if not live or not self.gate.allows(key, "agent"):
            return (skip,) * 14
        choices = self.session_choices()
        # Choices are replaced only when they changed, so the picker is not disturbed for nothing.
        sessions: Any = skip
        new_listed: Any = skip
        if [list(c) for c in choices] != [list(c) for c in listed or []]:
            known = {value for _, value in choices}
            sessions = gr.Dropdown(
                choices=choices, value=session_id if session_id in known else None
            )
            new_listed = choices
        session_outputs: tuple[Any, ...] = (skip,) * 8
        if session_id:
            view = self.session_view(session_id)
            if (shown or {}).get("session") != session_id or tuple(
                (shown or {}).get("marker", ())
            ) != view.marker:
                session_outputs = self.show_session(key, session_id)
        evidence_outputs: tuple[Any, ...] = (skip,) * 4
        if evidence_id and evidence_state == "pending":
            pack_view = self.evidence_view(evidence_id)
            if pack_view.state != "pending":
                evidence_outputs = (
                    pack_view.status,
                    pack_view.shap,
                    pack_view.heatmaps,
                    pack_view.state,
                )
        return (sessions, new_listed, *session_outputs, *evidence_outputs)


def build_agent_tab(
    components: Components, gate: StaffGate, key: gr.Textbox
) -> tuple[gr.Dropdown, gr.State, AgentConsole]:
    """The widgets and events of the console; returns the conversation picker, its listed
    choices and the handlers, so opening the tab can refresh the list."""
    console = AgentConsole(components, gate)
    shown = gr.State({})
    listed = gr.State([])
    evidence_state = gr.State("")
    with gr.Row():
        session = gr.Dropdown(
            label="Conversation", choices=[], elem_id="agent-session", scale=4, interactive=True
        )
        with gr.Column(scale=1, min_width=160):
            refresh = gr.Button("Refresh", elem_id="agent-refresh", size="sm")
            live = gr.Checkbox(value=True, label="Live updates", elem_id="agent-live")
    with gr.Row():
        with gr.Column(scale=3):
            transcript = gr.Chatbot(
                elem_id="agent-transcript",
                label="Transcript",
                height=360,
                feedback_options=None,
                group_consecutive_messages=False,
            )
            decision = gr.HTML(_NO_SESSION, elem_id="agent-decision")
            ticket = gr.HTML(elem_id="agent-ticket")
            suggestions = gr.Radio(
                choices=[],
                label="Suggested replies (pick one, edit it, send it)",
                elem_id="suggested-replies",
            )
            draft = gr.Textbox(label="Reply to the customer", lines=3, elem_id="agent-draft")
            send = gr.Button("Send to customer", variant="primary", elem_id="agent-send")
        with gr.Column(scale=2):
            plot = gr.LinePlot(
                x="turn",
                y="value",
                color="series",
                title="Sentiment (message and trend)",
                y_lim=[-1, 1],
                elem_id="sentiment-plot",
                height=220,
            )
            evidence_turn = gr.Dropdown(
                label="Evidence for turn", choices=[], elem_id="evidence-turn", interactive=True
            )
            status = gr.Markdown(elem_id="evidence-status")
            shap = gr.HTML(elem_id="shap-highlights")
            heatmaps = gr.Gallery(
                label="Grad-CAM",
                elem_id="heatmaps",
                columns=1,
                height="auto",
                object_fit="contain",
                preview=False,
            )
    timer = gr.Timer(POLL_SECONDS)

    session_outputs = [transcript, plot, decision, ticket, suggestions, draft, evidence_turn, shown]
    evidence_outputs = [status, shap, heatmaps, evidence_state]
    session.change(console.show_session, inputs=[key, session], outputs=session_outputs)
    refresh.click(console.list_sessions, inputs=[key], outputs=[session, listed]).then(
        console.show_session, inputs=[key, session], outputs=session_outputs
    )
    evidence_turn.change(
        console.show_evidence, inputs=[key, evidence_turn], outputs=evidence_outputs
    )
    suggestions.change(lambda text: text or gr.skip(), inputs=[suggestions], outputs=[draft])
    send.click(console.send, inputs=[key, session, draft], outputs=[transcript, draft, shown])
    timer.tick(
        console.tick,
        inputs=[key, live, session, listed, shown, evidence_turn, evidence_state],
        outputs=[session, listed, *session_outputs, *evidence_outputs],
        show_progress="hidden",
    )
    return session, listed, console
