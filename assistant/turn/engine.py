"""The turn engine: one plain function of (request, session state, components) → TurnResult.

safety → perceive (language, sentiment, intent, photo) → retrieve → decide → respond → remember.
The CLI, the REST API and the UI all call `Engine.handle_turn`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from assistant.perception.intent import IntentResult
from assistant.perception.intents import Intent
from assistant.perception.language import Language, detect_language
from assistant.perception.sentiment import SentimentResult, SessionTrend
from assistant.turn.drafting import Drafter
from assistant.turn.memory import ConversationMemory, SessionState
from assistant.turn.policy import PolicyInput, PolicyThresholds, decide
from assistant.turn.responder import (
    ProductFacts,
    ResponderInput,
    best_sentences,
    compose,
    product_asks,
    requested_colour,
)
from assistant.turn.safety import (
    InputRejected,
    Limits,
    check_image,
    check_text,
    find_order_reference,
    redact,
)
from assistant.turn.schemas import (
    Action,
    Citation,
    IntentView,
    ProductCard,
    SentimentView,
    Ticket,
    TicketType,
    TurnRequest,
    TurnResult,
)
from assistant.turn.tickets import INTENT_OF, answers, fill, policy_article, report_type
from knowledge_base.store import CollectionKind, Hit, Where
from retrieval.search.types import ArticleMatch

# Intents whose answers live in FAQ/policy articles rather than in a product record.
ARTICLE_INTENTS = frozenset(
    {
        Intent.ORDER_STATUS,
        Intent.RETURN_REFUND,
        Intent.EXCHANGE,
        Intent.SHIPPING_DELIVERY,
        Intent.DAMAGED_WRONG_ITEM,
        Intent.WARRANTY,
        Intent.CANCEL_ORDER,
        Intent.PAYMENT,
        Intent.COMPLAINT,
        Intent.OTHER,
        Intent.PRODUCT_QUESTION,
    }
)
# Asking these again is conversation, not a sign that the last answer failed.
REPEATABLE = frozenset(
    {Intent.GREETING, Intent.OTHER, Intent.PRODUCT_QUESTION, Intent.FIND_BY_PHOTO}
)
# A photo turns these into a photo search: the text only said hello or asked "what is this?".
_PHOTO_SEARCH_INTENTS = frozenset({Intent.GREETING, Intent.OTHER, Intent.PRODUCT_QUESTION})
# Intents whose text may name a product ("black backpack") to look up in the catalogue.
_PRODUCT_TEXT_INTENTS = frozenset({Intent.PRODUCT_QUESTION, Intent.FIND_BY_PHOTO, Intent.OTHER})
_FOLLOW_UP = (
    "it",
    "this",
    "that",
    "these",
    "they",
    "them",
    "这个",
    "这款",
    "它",
    "那个",
    "这件",
    "这双",
)


@dataclass(frozen=True)
class PhotoCandidate:
    """A product that may be the one in the customer's photo.

    `score` is the calibrated confidence for the first candidate and the similarity for the
    others; `matched_image` is the catalogue image that matched, shown on the product card.
    """

    product_id: str
    score: float
    matched_image: str | None = None


@dataclass(frozen=True)
class PhotoEvidence:
    """Photo search as the engine sees it: ranked candidates, and whether the first is sure."""

    candidates: tuple[PhotoCandidate, ...] = ()
    confident: bool = False


@dataclass(frozen=True)
class ProductHit:
    """A product found from the message text, with its dense (cosine) score, which the engine
    compares with `EngineConfig.product_text_min_score`."""

    product_id: str
    dense_score: float


class Perception(Protocol):
    """What the engine needs from the models; `assistant.perception.models.ModelPerception`
    supplies the real ones, a test a few canned answers."""

    def sentiment(self, text: str, language: str) -> SentimentResult: ...
    def intent(self, text: str, language: str) -> IntentResult: ...
    def photo(self, image: Image.Image, k: int) -> PhotoEvidence: ...
    def articles(self, query: str, k: int, language: str | None) -> list[ArticleMatch]: ...
    def products(self, query: str, k: int) -> list[ProductHit]: ...


class Records(Protocol):
    """The knowledge-base reads the engine makes: catalogue records and article chunks by id or
    filter (`KnowledgeStore.get`)."""

    def get(
        self, kind: CollectionKind, ids: Sequence[str] | None = None, where: Where | None = None
    ) -> list[Hit]: ...


@dataclass
class EngineConfig:
    limits: Limits = field(default_factory=Limits)
    thresholds: PolicyThresholds = field(default_factory=PolicyThresholds)
    article_min_score: float = 0.85
    product_text_min_score: float = 0.86
    trend_alpha: float = 0.5


class Engine:
    def __init__(
        self,
        perception: Perception,
        store: Records,
        memory: ConversationMemory,
        config: EngineConfig | None = None,
        on_turn: Callable[[TurnResult, Image.Image | None], None] | None = None,
        drafter: Drafter | None = None,
    ) -> None:
        """`on_turn` sees every stored turn with its decoded photo (the evidence pack hook);
        `drafter` rewrites grounded answers with a chat model, checked against the sources."""
        self.perception = perception
        self.store = store
        self.memory = memory
        self.config = config or EngineConfig()
        self.on_turn = on_turn
        self.drafter = drafter

    def handle_turn(self, request: TurnRequest) -> TurnResult:
        started = time.perf_counter()
        config = self.config
        text = check_text(request.text, config.limits)
        image = check_image(request.image, config.limits) if request.image is not None else None
        if not text and image is None and not request.chosen_product_id:
            raise InputRejected("empty message: send some text, a photo, or both")
        state = self.memory.load_state(request.session_id)
        previous: Language = "zh" if state.language == "zh" else "en"
        language: Language = request.lang or (
            detect_language(text, previous).language if text else previous
        )

        sentiment = (
            self.perception.sentiment(text, language)
            if text
            else SentimentResult(score=0.0, label="neutral", language=language, model="none")
        )
        trend, streak = _update_trend(state, sentiment, config.trend_alpha)
        perceived = (
            self.perception.intent(text, language)
            if text
            else IntentResult(
                intent=Intent.FIND_BY_PHOTO,
                confidence=1.0,
                model="photo-only",
                label=Intent.FIND_BY_PHOTO.value,
            )
        )
        probabilities = dict(perceived.alternatives)
        intent = perceived.intent
        pending = state.ticket
        order_reference = find_order_reference(
            text, bare=pending is not None and "order_reference" in pending.missing
        )
        named = self._named_candidate(state, text)
        # A photo with damage words is a damage report, whatever the text model said; while a
        # ticket waits, a bare order number, a photo or a picked item continue it.
        ticket_type = report_type(intent, text, image is not None, order_reference)
        if pending is not None and (
            ticket_type is not None
            or answers(
                pending,
                order_reference,
                image is not None,
                bool(request.chosen_product_id or named),
            )
        ):
            ticket_type = pending.ticket_type
        if ticket_type is not None:
            intent = INTENT_OF[ticket_type]
        elif image is not None and intent in _PHOTO_SEARCH_INTENTS:
            intent = Intent.FIND_BY_PHOTO

        evidence_id = uuid.uuid4().hex
        product, confidence, candidates, photo_confident = self._resolve_product(
            request, state, image, text, intent, named, ticket_type is not None
        )
        ticket: Ticket | None = None
        if ticket_type is not None:
            ticket = fill(
                pending
                or Ticket(ticket_type=ticket_type, issue=redact(text)[:500], evidence_id=""),
                evidence_id=evidence_id,
                order_reference=order_reference,
                product_id=product.product_id if product else None,
                product_title=product.title if product else None,
                photo=image is not None,
            )
            # The item is already known: an unsure photo of the damage needs no "which one?".
            photo_confident = photo_confident or ticket.product_id is not None
        asks = product_asks(text)
        articles: list[ArticleMatch] = []
        if ticket is not None:
            policy = self._policy(ticket.ticket_type, language)
            articles = [policy] if policy is not None else []
            ticket.policy_article_id = policy.article_id if policy else None
            ticket.policy_excerpt = (
                " ".join(best_sentences(policy.text, ticket.issue))[:300] if policy else None
            )
        elif intent in ARTICLE_INTENTS and not (product is not None and asks):
            articles = self._articles(text, language)
        variants = self._variants(product, text) if product is not None and "colour" in asks else []
        has_answer = (
            bool(articles)
            or ticket is not None
            or (
                product is not None
                and (bool(asks) or intent == Intent.FIND_BY_PHOTO or image is not None)
            )
        )
        ambiguous = (
            not has_answer
            and intent == Intent.OTHER
            and product is None
            and len(text.split()) <= 2
            and len(text) < 12
        )
        progressed = ticket is not None and (
            pending is None or len(ticket.missing) < len(pending.missing)
        )
        unresolved = _update_unresolved(state, intent, has_answer, progressed)
        decision = decide(
            PolicyInput(
                text=text,
                intent=intent,
                intent_confidence=perceived.confidence,
                sentiment_score=sentiment.score,
                sentiment_trend=trend,
                consecutive_negative=streak,
                unresolved_count=unresolved,
                photo_given=image is not None,
                photo_confident=photo_confident,
                has_answer=has_answer,
                ambiguous=ambiguous,
                p_human=probabilities.get(Intent.HUMAN_AGENT.value, 0.0),
                p_complaint=probabilities.get(Intent.COMPLAINT.value, 0.0),
            ),
            config.thresholds,
        )
        upset = sentiment.label == "negative" or streak >= config.thresholds.angry_streak
        reply = compose(
            ResponderInput(
                language=language,
                intent=intent,
                question=text,
                decision=decision,
                upset=upset,
                product=product if decision.action != "clarify" else None,
                product_confidence=confidence,
                variants=variants,
                candidates=candidates if decision.action == "clarify" else [],
                articles=articles,
                ticket=ticket,
            )
        )
        debug: dict[str, Any] = {"unresolved": unresolved}
        reply_text = reply.text
        # A ticket reply carries the questions the ticket needs; a rewrite could drop them.
        if (
            self.drafter is not None
            and decision.action == "answer"
            and reply.citations
            and ticket is None
        ):
            reply_text, check = self.drafter.rewrite(
                reply.text,
                _sources_text(reply.citations, articles, product),
                {c.number for c in reply.citations},
                text,
                language,
                upset,
            )
            debug["draft"] = {
                "model": self.drafter.name,
                "used": check.accepted,
                "reasons": check.reasons,
            }
        result = TurnResult(
            session_id=request.session_id,
            turn_index=state.turn_count,
            language=language,
            reply=reply_text,
            citations=reply.citations,
            products=self._cards(product, confidence, candidates, decision.action),
            sentiment=SentimentView(
                score=round(sentiment.score, 4),
                label=sentiment.label,
                trend=round(trend, 4),
                consecutive_negative=streak,
                model=sentiment.model,
            ),
            intent=IntentView(
                intent=intent, confidence=round(perceived.confidence, 4), model=perceived.model
            ),
            decision=decision,
            suggested_replies=reply.suggestions,
            context_product_id=product.product_id
            if product is not None
            else state.context_product_id,
            ticket=ticket,
            evidence_id=evidence_id,
            debug=debug,
        )
        result.summary = _summary(state, result)
        self._remember(state, result, language, product, candidates, decision.action, intent)
        if ticket is not None:
            state.ticket = ticket if ticket.missing else None
        result.latency_ms = round(1000 * (time.perf_counter() - started), 1)
        self.memory.save_turn(
            request.session_id,
            state,
            redact(text),
            result.evidence_id,
            result.model_dump(mode="json"),
        )
        if self.on_turn is not None:
            self.on_turn(result, image)
        return result

    def _resolve_product(
        self,
        request: TurnRequest,
        state: SessionState,
        image: Image.Image | None,
        text: str,
        intent: Intent,
        named: str | None,
        ticket_turn: bool,
    ) -> tuple[ProductFacts | None, float, list[ProductFacts], bool]:
        """The product this turn is about: picked, photographed, named, or carried from context."""
        if request.chosen_product_id:
            facts = self._facts(request.chosen_product_id)
            if facts is None:
                raise InputRejected(
                    f"unknown product {request.chosen_product_id!r}: pick one of the suggested products"
                )
            return facts, 1.0, [], True
        if image is not None:
            photo = self.perception.photo(image, 3)
            candidates = [
                f
                for f in (self._facts(c.product_id, c.matched_image) for c in photo.candidates)
                if f is not None
            ]
            top = candidates[0] if candidates else None
            return (
                (top if photo.confident else None),
                (photo.candidates[0].score if photo.candidates else 0.0),
                candidates,
                photo.confident,
            )
        if named is not None:
            return self._facts(named), 1.0, [], True
        if text and (intent in _PRODUCT_TEXT_INTENTS or ticket_turn) and not _is_follow_up(text):
            found = self.perception.products(text, 1)
            if found and found[0].dense_score >= self.config.product_text_min_score:
                return self._facts(found[0].product_id), found[0].dense_score, [], True
        if state.context_product_id and (_is_follow_up(text) or product_asks(text)):
            return self._facts(state.context_product_id), 1.0, [], True
        return None, 0.0, [], True

    def _facts(self, product_id: str, matched_image: str | None = None) -> ProductFacts | None:
        hits = self.store.get("products", ids=[product_id])
        if not hits:
            return None
        facts = ProductFacts.from_metadata(product_id, hits[0].metadata)
        if matched_image:
            facts.image = matched_image
        return facts

    def _articles(self, text: str, language: str) -> list[ArticleMatch]:
        found = self.perception.articles(text, 3, language) or self.perception.articles(
            text, 3, None
        )
        relevant = [a for a in found if _dense_score(a) >= self.config.article_min_score]
        return [self._whole_article(a) for a in relevant]

    def _whole_article(self, match: ArticleMatch) -> ArticleMatch:
        """Quote from the whole article: the best sentence may sit outside the best chunk."""
        chunks = self.store.get("articles", where={"article_id": match.article_id})
        chunks.sort(key=lambda hit: int(hit.metadata.get("position", 0)))
        text = "\n".join(hit.document for hit in chunks) or match.text
        return match.model_copy(update={"text": text})

    def _variants(self, product: ProductFacts, text: str) -> list[ProductFacts]:
        """Other products of the same kind, for "do you have it in blue?"."""
        colour = requested_colour(text)
        if not colour:
            return []
        kind = product.attributes.get("kind", "")
        hits = (
            self.store.get("products", where={"category": product.category})
            if product.category
            else []
        )
        variants = [
            ProductFacts.from_metadata(h.id, h.metadata) for h in hits if h.id != product.product_id
        ]
        return [
            v
            for v in variants
            if v.attributes.get("kind", "") == kind
            and colour in v.attributes.get("color", "").lower()
        ]

    def _cards(
        self,
        product: ProductFacts | None,
        confidence: float,
        candidates: list[ProductFacts],
        action: Action,
    ) -> list[ProductCard]:
        if action == "clarify" and candidates:
            return [c.card(reason="possible match for the photo") for c in candidates]
        return (
            [product.card(confidence, "product in this conversation")]
            if product is not None
            else []
        )

    def _named_candidate(self, state: SessionState, text: str) -> str | None:
        """The one product of the last "is it one of these?" list in the colour the customer
        named ("the blue one"), if exactly one matches."""
        colour = requested_colour(text) if state.candidate_product_ids else None
        if colour is None:
            return None
        matching = [
            facts.product_id
            for facts in (
                ProductFacts.from_metadata(hit.id, hit.metadata)
                for hit in self.store.get("products", ids=state.candidate_product_ids)
            )
            if colour
            in (facts.attributes.get("color") or facts.attributes.get("colour", "")).lower()
        ]
        return matching[0] if len(matching) == 1 else None

    def _policy(self, ticket_type: TicketType, language: str) -> ArticleMatch | None:
        """The policy article of this kind of case, whole: the one tagged for it, never the one
        that happens to share the most words with the customer's message."""
        head = policy_article(
            self.store.get("articles", where={"position": 0}), ticket_type, language
        )
        if head is None:
            return None
        return self._whole_article(
            ArticleMatch(
                chunk_id=head.id,
                article_id=str(head.metadata.get("article_id", head.id)),
                title=str(head.metadata.get("title", "")),
                text=head.document,
                score=1.0,
                language=str(head.metadata.get("language") or language),
            )
        )

    def _remember(
        self,
        state: SessionState,
        result: TurnResult,
        language: str,
        product: ProductFacts | None,
        candidates: list[ProductFacts],
        action: Action,
        intent: Intent,
    ) -> None:
        state.language = language
        state.turn_count += 1
        state.last_intent = intent.value
        if product is not None and action != "clarify":
            state.context_product_id = product.product_id
        state.candidate_product_ids = (
            [c.product_id for c in candidates] if action == "clarify" else []
        )
        state.escalated = state.escalated or action == "escalate"


def _sources_text(
    citations: list[Citation], articles: list[ArticleMatch], product: ProductFacts | None
) -> str:
    """Everything a drafted reply may state: the numbered sources, the whole cited articles and
    the product's catalogue fields."""
    parts = [f"[{c.number}] {c.title}: {c.snippet}" for c in citations]
    parts += [a.text for a in articles]
    if product is not None:
        parts.append(
            f"{product.title} {product.title_zh} price {product.price} {product.currency} "
            f"stock {product.stock} {product.description} {product.attributes}"
        )
    return "\n".join(parts)


def _dense_score(article: ArticleMatch) -> float:
    dense = getattr(article, "dense_score", None)
    return float(dense) if dense is not None else float(article.score)


def _is_follow_up(text: str) -> bool:
    lowered = f" {text.lower()} "
    return any(
        (f" {w} " in lowered or f" {w}?" in lowered) if w.isascii() else w in text
        for w in _FOLLOW_UP
    )


def _update_trend(
    state: SessionState, sentiment: SentimentResult, alpha: float
) -> tuple[float, int]:
    """The session's exponentially weighted sentiment and its run of negative turns."""
    trend = (
        SessionTrend.from_dict(state.sentiment) if state.sentiment else SessionTrend(alpha=alpha)
    )
    trend.update(sentiment)
    state.sentiment = trend.to_dict()
    return trend.value, trend.consecutive_negative


def _update_unresolved(
    state: SessionState, intent: Intent, has_answer: bool, progressed: bool = False
) -> int:
    """A request counts as unresolved again when it comes back right after, or had no answer;
    a turn that fills in the ticket is progress, not a repeat."""
    if intent in REPEATABLE:
        return 0
    repeated = state.last_intent == intent.value and not progressed
    count = state.unresolved.get(intent.value, 0)
    count = count + 1 if (repeated or not has_answer) else 0
    state.unresolved[intent.value] = count
    return count


def _summary(state: SessionState, result: TurnResult) -> str:
    """One line for the agent: who, what, mood, where it stands."""
    product = f" about {result.context_product_id}" if result.context_product_id else ""
    mood = f"{result.sentiment.label} (trend {result.sentiment.trend:+.2f})"
    escalated = (
        "escalated"
        if result.decision.action == "escalate" or state.escalated
        else result.decision.action
    )
    return f"Turn {result.turn_index + 1}: {result.intent.intent.value}{product}; customer {mood}; {escalated}."
