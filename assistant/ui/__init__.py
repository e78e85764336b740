"""The Gradio UI: customer chat, agent console and knowledge base, on one `Components`.

The UI only translates between widgets and the services, which it calls in-process; it is
mounted on the FastAPI app by `app.create_app`, whose chat turn runner it shares. Gradio is
imported when the UI is built, not before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gradio as gr

    from assistant.components import Components
    from assistant.services.chat import TurnRunner

TITLE = "ShopSight"


def build_ui(components: Components, turns: TurnRunner | None = None) -> gr.Blocks:
    """The whole UI as one Blocks, ready for `gradio.mount_gradio_app(app, ui, path="/")`.

    Chat turns go through `turns` (the API's runner when mounted on the app); without one the UI
    gets a runner of its own on the same settings.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from assistant.services.chat import TurnRunner
    from assistant.ui.access import StaffGate
    from assistant.ui.agent import build_agent_tab
    from assistant.ui.customer import build_customer_tab
    from assistant.ui.knowledge import build_knowledge_tab

    turns = turns or TurnRunner.from_settings(components.settings, lambda: components.engine)
    gate = StaffGate(components.settings)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as ui:
        gr.Markdown(f"## {TITLE} · customer service")
        key = gate.key_box()
        with gr.Tabs():
            with gr.Tab("Customer chat / 客户聊天", id="customer", elem_id="tab-customer"):
                build_customer_tab(components, turns, ui)
            with gr.Tab("Agent console", id="agent", elem_id="tab-agent") as agent_tab:
                sessions, listed, console = build_agent_tab(components, gate, key)
            with gr.Tab("Knowledge base", id="knowledge", elem_id="tab-knowledge") as kb_tab:
                stats, knowledge = build_knowledge_tab(components, gate, key)
        agent_tab.select(console.on_open, inputs=[key], outputs=[sessions, listed])
        kb_tab.select(knowledge.stats, inputs=[key], outputs=[stats])
    return ui


__all__ = ["build_ui"]
