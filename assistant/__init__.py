"""The conversation layer of ShopSight.

- `settings`, `logging`, `components`: configuration and the composition root.
- `turn`: the turn engine and its stages (safety, policy, responder, memory, drafting).
- `perception`: the models the engine asks (language, sentiment, intent).
- `training`, `evaluation`: fitting and scoring the intent and sentiment heads.
- `services`: chat turns, knowledge-base ingest and search, evidence, review; the one place
  each use case lives, called by `cli`, `api` and `ui`.
"""

from knowledge_base.moved import alias_moved_modules

alias_moved_modules(
    {
        "assistant.engine": "assistant.turn.engine",
        "assistant.schemas": "assistant.turn.schemas",
        "assistant.safety": "assistant.turn.safety",
        "assistant.policy": "assistant.turn.policy",
        "assistant.responder": "assistant.turn.responder",
        "assistant.memory": "assistant.turn.memory",
        "assistant.drafting": "assistant.turn.drafting",
        "assistant.chat_models": "assistant.turn.chat_models",
        "assistant.intent": "assistant.perception.intent",
        "assistant.intents": "assistant.perception.intents",
        "assistant.sentiment": "assistant.perception.sentiment",
        "assistant.language": "assistant.perception.language",
        "assistant.intent_training": "assistant.training.intent",
        "assistant.sentiment_training": "assistant.training.sentiment",
        "assistant.evidence": "assistant.services.evidence",
        "assistant.review": "assistant.services.review",
        "assistant.api.turns": "assistant.services.chat",
        "assistant.api.metrics": "assistant.services.metrics",
        "assistant.api.ratelimit": "assistant.services.ratelimit",
        "assistant.main": "assistant.cli",
        "assistant.commands": "assistant.cli",
        **{
            f"assistant.commands.{name}": f"assistant.cli.{name}"
            for name in (
                *("alignment", "category", "chat", "explain", "faq", "intent"),
                *("photo_search", "sentiment", "serve", "common"),
            )
        },
    }
)
