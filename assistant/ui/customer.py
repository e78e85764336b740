"""The customer chat tab: text and photo in, cited replies and product cards out."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.services.ratelimit import RateLimited
from assistant.turn.safety import InputRejected
from assistant.turn.schemas import TurnRequest, TurnResult
from assistant.ui.render import label, product_cards_html, reply_message

if TYPE_CHECKING:
    from assistant.components import Components
    from assistant.services.chat import TurnRunner

History = list[dict[str, Any]]

LANGUAGES = [("Auto", "auto"), ("English", "en"), ("中文", "zh")]
POLL_SECONDS = 3.0


def new_session_id() -> str:
    return f"web-{uuid.uuid4().hex[:12]}"


def session_line(session_id: str) -> str:
    return f"Conversation `{session_id}`"


def assistant_message(result: TurnResult) -> dict[str, Any]:
    """The reply bubble; an "is it one of these?" turn offers its products as clickable options."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply_message(result.reply, result.citations, result.language),
    }
    if result.decision.action == "clarify" and result.products:
        message["options"] = [
            {"value": card.product_id, "label": card.name(result.language)}
            for card in result.products
        ]
    return message


def agent_message(text: str, language: str) -> dict[str, Any]:
    return {"role": "assistant", "content": f"**{label(language, 'agent')}:** {text}"}


class CustomerChat:
    """Event handlers of the chat tab. Each turn goes through the shared turn runner as an
    untrusted caller: the session's lock, the concurrency cap, the per-session rate limit and
    the metrics of the API's public chats."""

    def __init__(self, components: Components, turns: TurnRunner) -> None:
        self.components = components
        self.turns = turns

    def start(self) -> tuple[str, str, History, str, int, dict[str, Any]]:
        session_id = new_session_id()
        return session_id, session_line(session_id), [], "", 0, {}

    def delete(self, session_id: str) -> tuple[str, str, History, str, int, dict[str, Any]]:
        """Erase the conversation (turns, photos, explanations) and start a fresh one."""
        if session_id:
            self.components.delete_session(session_id)
        gr.Info("Your conversation was deleted.")
        return self.start()

    def add_user(self, message: dict[str, Any] | None, history: History) -> tuple[Any, ...]:
        """Show the customer's message at once; the reply follows in `answer`."""
        message = message or {}
        text = str(message.get("text") or "").strip()
        files = [str(f) for f in message.get("files") or []]
        history = list(history or [])
        photo = files[0] if files else None
        if photo:
            history.append({"role": "user", "content": {"path": photo}})
        if text:
            history.append({"role": "user", "content": text})
        pending = {"text": text, "photo": photo} if text or photo else None
        # The agent-message poll pauses while the reply is computed, so it cannot overwrite it.
        return (
            history,
            gr.MultimodalTextbox(value=None, interactive=False),
            pending,
            gr.Timer(active=False),
        )

    def answer(
        self,
        pending: dict[str, Any] | None,
        history: History,
        session_id: str,
        lang: str,
        seen_agent: int,
        shown: dict[str, Any],
    ) -> tuple[Any, ...]:
        """Run the turn; whatever happens, the input box and the poll are switched back on."""
        history = list(history or [])
        cards: Any = gr.skip()
        if pending:
            try:
                photo = self._read_photo(pending["photo"]) if pending["photo"] else None
            except InputRejected as exc:
                history.append({"role": "assistant", "content": str(exc)})
            else:
                request = TurnRequest(
                    session_id=session_id,
                    text=pending["text"],
                    image=photo,
                    lang=None if lang == "auto" else lang,
                )
                result = self._turn(history, request)
                if result is not None:
                    cards, shown = self._cards(result)
        history, seen_agent = self._with_agent_messages(history, session_id, seen_agent, shown)
        return (
            history,
            cards,
            shown,
            seen_agent,
            gr.MultimodalTextbox(interactive=True),
            gr.Timer(active=True),
        )

    def pick(
        self,
        evt: gr.SelectData,
        history: History,
        session_id: str,
        lang: str,
        shown: dict[str, Any],
    ) -> tuple[Any, ...]:
        """The customer clicked one of the "is it one of these?" products."""
        product_id = str(evt.value)
        shown = shown or {}
        title = shown.get("candidates", {}).get(product_id, product_id)
        picked = label(shown.get("language", "en"), "picked", title=title)
        history = [*(history or []), {"role": "user", "content": picked}]
        request = TurnRequest(
            session_id=session_id,
            chosen_product_id=product_id,
            lang=None if lang == "auto" else lang,
        )
        result = self._turn(history, request)
        if result is None:
            return history, gr.skip(), gr.skip()
        cards, shown = self._cards(result)
        return history, cards, shown

    def poll(
        self, session_id: str, seen_agent: int, history: History, shown: dict[str, Any]
    ) -> tuple[Any, ...]:
        """Messages a human agent sent from the console since the chat last looked."""
        if not session_id or not self.components.memory.agent_replies(session_id)[seen_agent:]:
            return gr.skip(), gr.skip()
        return self._with_agent_messages(list(history or []), session_id, seen_agent, shown)

    def _turn(self, history: History, request: TurnRequest) -> TurnResult | None:
        """Run one turn, appending the reply (or the reason it was refused) to `history`."""
        try:
            result = self.turns.answer(request, trusted=False)
        except (InputRejected, RateLimited) as exc:
            history.append({"role": "assistant", "content": str(exc)})
            return None
        history.append(assistant_message(result))
        return result

    def _read_photo(self, path: str) -> bytes:
        """The upload's bytes, refused before reading when it is over the size limit."""
        limit_mb = self.components.settings.max_upload_mb
        size = Path(path).stat().st_size
        if size > limit_mb * 1024 * 1024:
            raise InputRejected(
                f"ImageTooLarge: {size / 1024 / 1024:.1f} MB > {limit_mb:g} MB limit "
                "(SHOPSIGHT_MAX_UPLOAD_MB)"
            )
        return Path(path).read_bytes()

    def _cards(self, result: TurnResult) -> tuple[Any, dict[str, Any]]:
        """The turn's product cards (unchanged when it has none), and what the chat remembers
        for the next click: the reply's language and the products it asked about."""
        question = result.decision.action == "clarify"
        shown = {
            "language": result.language,
            "candidates": {c.product_id: c.name(result.language) for c in result.products}
            if question
            else {},
        }
        if not result.products:
            return gr.skip(), shown
        return product_cards_html(result.products, result.language, question=question), shown

    def _with_agent_messages(
        self, history: History, session_id: str, seen_agent: int, shown: dict[str, Any]
    ) -> tuple[History, int]:
        new = self.components.memory.agent_replies(session_id)[seen_agent:]
        language = (shown or {}).get("language", "en")
        history.extend(agent_message(m.text, language) for m in new)
        return history, seen_agent + len(new)


def _chat_widgets() -> tuple[gr.Chatbot, gr.MultimodalTextbox]:
    chatbot = gr.Chatbot(
        elem_id="chatbot",
        label="ShopSight",
        height=480,
        feedback_options=None,
        group_consecutive_messages=False,
        placeholder="Ask about a product, an order or our policies, or send a photo of a product."
        "<br>询问商品、订单或政策，或发送商品照片。",
    )
    box = gr.MultimodalTextbox(
        elem_id="chat-input",
        file_types=["image"],
        sources=["upload"],
        placeholder="Type a message or attach a photo… / 输入消息或上传照片…",
        show_label=False,
    )
    return chatbot, box


def build_customer_tab(components: Components, turns: TurnRunner, ui: gr.Blocks) -> None:
    """The widgets and events of the chat; call inside a `gr.Tab`."""
    chat = CustomerChat(components, turns)
    session = gr.State("")
    seen_agent = gr.State(0)
    pending = gr.State(None)
    shown = gr.State({})
    with gr.Row():
        lang = gr.Radio(LANGUAGES, value="auto", label="Language / 语言", elem_id="lang", scale=2)
        with gr.Column(scale=1, min_width=200):
            session_md = gr.Markdown(elem_id="session-id")
            with gr.Row():
                new_button = gr.Button("New conversation", elem_id="new-session", size="sm")
                delete_button = gr.Button(
                    "Delete my conversation", elem_id="delete-session", size="sm", variant="stop"
                )
    with gr.Row():
        with gr.Column(scale=3):
            chatbot, box = _chat_widgets()
        with gr.Column(scale=2, min_width=240):
            cards = gr.HTML(elem_id="product-cards")
    timer = gr.Timer(POLL_SECONDS)

    start_outputs = [session, session_md, chatbot, cards, seen_agent, shown]
    ui.load(chat.start, outputs=start_outputs)
    new_button.click(chat.start, outputs=start_outputs)
    delete_button.click(chat.delete, inputs=[session], outputs=start_outputs)

    box.submit(
        chat.add_user,
        inputs=[box, chatbot],
        outputs=[chatbot, box, pending, timer],
    ).then(
        chat.answer,
        inputs=[pending, chatbot, session, lang, seen_agent, shown],
        outputs=[chatbot, cards, shown, seen_agent, box, timer],
        concurrency_limit=components.settings.turn_concurrency,
        concurrency_id="chat-turn",
    )
    chatbot.option_select(
        chat.pick,
        inputs=[chatbot, session, lang, shown],
        outputs=[chatbot, cards, shown],
        concurrency_id="chat-turn",
    )
    timer.tick(
        chat.poll,
        inputs=[session, seen_agent, chatbot, shown],
        outputs=[chatbot, seen_agent],
        show_progress="hidden",
    )
