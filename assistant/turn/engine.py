"""The turn engine: one plain function of (request, session state, components) → TurnResult.

safety → perceive (language, sentiment, intent, photo) → retrieve → decide → respond → remember.
The CLI, the REST API and the UI all call `Engine.handle_turn`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from PIL import Image

from assistant.perception.intent import IntentResult
from assistant.perception.intents import Intent
from assistant.perception.language import Language, detect_language
from assistant.perception.sentiment import SentimentResult, SessionTrend
from assistant.turn.candidates import ABSENT_BELOW, PhotoVerdict, photo_verdict, pick
from assistant.turn.drafting import Drafter
from assistant.turn.memory import ConversationMemory, SessionState
from assistant.turn.policy import PolicyInput, PolicyThresholds, decide
from assistant.turn.product_search import CatalogueSearch, SearchTurn
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
    CardRole,
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


@dataclass(frozen=True)
class Resolved:
    """The product a turn is about, and how it was found."""

    product: ProductFacts | None
    confidence: float = 1.0
    # The photo's ranked matches, offered as candidates or as similar items.
    candidates: list[ProductFacts] = field(default_factory=list)
    # The photo's verdict; None when the turn has no photo.
    photo: PhotoVerdict | None = None
    # The customer picked it from the products offered (a click, an ordinal or a name).
    confirmed: bool = False


@dataclass
class EngineConfig:
    limits: Limits = field(default_factory=Limits)
    thresholds: PolicyThresholds = field(default_factory=PolicyThresholds)
    article_min_score: float = 0.85
    product_text_min_score: float = 0.86
    trend_alpha: float = 0.5
    # An unsure photo offers this many candidates, a photo of something not sold here as many
    # similar items.
    photo_candidates: int = 5
    photo_absent_below: float = ABSENT_BELOW


class Engine:
    def __init__(
        self,
        perception: Perception,
        store: Records,
        memory: ConversationMemory,
        config: EngineConfig | None = None,
        on_turn: Callable[[TurnResult, Image.Image | None], None] | None = None,
        drafter: Drafter | None = None,
        catalogue: CatalogueSearch | None = None,
    ) -> None:
        """`on_turn` sees every stored turn with its decoded photo (the evidence pack hook);
        `drafter` rewrites grounded answers with a chat model, checked against the sources;
        `catalogue` (attribute filters and hybrid ranking) turns "do you sell black
        t-shirts?" into a list."""
        self.perception = perception
        self.store = store
        self.memory = memory
        self.config = config or EngineConfig()
        self.on_turn = on_turn
        self.drafter = drafter
        self.catalogue_search = catalogue

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
        picked = self._picked(state, text) if image is None else None
        named = picked or self._ticket_item(pending, text)
        # A photo with damage words is a damage report, whatever the text model said; while a
        # ticket waits, a bare order number, a photo or a named item continue it, as a ticket
        # of the kind it was opened as.
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
        elif image is not None and (intent in _PHOTO_SEARCH_INTENTS or product_asks(text)):
            intent = Intent.FIND_BY_PHOTO
        elif request.chosen_product_id or picked:
            # "The second one" answers the "which one?" of a photo turn, whatever else it reads as.
            intent = Intent.FIND_BY_PHOTO

        search = self._search(request, state, text, image, ticket_type, named)
        if search is not None:
            intent = Intent.PRODUCT_QUESTION

        evidence_id = uuid.uuid4().hex
        resolved = (
            Resolved(search.selected)
            if search is not None
            else self._resolve_product(
                request, state, image, text, intent, named, ticket_type is not None
            )
        )
        product, confidence, candidates = (
            resolved.product,
            resolved.confidence,
            resolved.candidates,
        )
        # A damaged or returned item was bought here: a photo unlike the catalogue asks which
        # item it is instead of saying the shop does not sell it.
        verdict = (
            "unsure" if ticket_type is not None and resolved.photo == "absent" else resolved.photo
        )
        photo_confident = verdict in (None, "match")
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
        asks = product_asks(text) or (state.pending_asks if resolved.confirmed else [])
        articles: list[ArticleMatch] = []
        if ticket is not None:
            policy = self._policy(ticket.ticket_type, language)
            articles = [policy] if policy is not None else []
            ticket.policy_article_id = policy.article_id if policy else None
            ticket.policy_excerpt = (
                " ".join(best_sentences(policy.text, ticket.issue))[:300] if policy else None
            )
        elif intent in ARTICLE_INTENTS and not (product is not None and asks) and search is None:
            articles = self._articles(text, language)
        variants = self._variants(product, text) if product is not None and "colour" in asks else []
        has_answer = (
            bool(articles)
            or search is not None
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
                product_search=search is not None and search.outcome is not None,
                photo_absent=verdict == "absent",
            ),
            config.thresholds,
        )
        offered = _offered(decision.action, verdict, candidates)
        upset = sentiment.label == "negative" or streak >= config.thresholds.angry_streak
        reply = compose(
            _with_search(
                ResponderInput(
                    language=language,
                    intent=intent,
                    question=text,
                    decision=decision,
                    upset=upset,
                    product=product if decision.action != "clarify" else None,
                    product_confidence=confidence,
                    variants=variants,
                    candidates=candidates if offered == "candidate" else [],
                    articles=articles,
                    ticket=ticket,
                    asks=asks,
                    named_as=_named_as(resolved, verdict, state.candidates_similar)
                    if ticket is None
                    else None,
                    similar=candidates if offered == "similar" else [],
                ),
                search,
                language,
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
            products=self._cards(product, confidence, candidates, decision.action, offered)
            if search is None or search.outcome is None
            else search.outcome.cards(),
            search=search.outcome.view() if search is not None and search.outcome else None,
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
            else (None if offered else state.context_product_id),
            ticket=ticket,
            evidence_id=evidence_id,
            debug=debug,
        )
        result.summary = _summary(state, result)
        self._remember(state, language, product, candidates, decision.action, intent, offered)
        state.pending_asks = asks if offered else []
        if search is not None or image is not None or ticket is not None:
            state.product_search = search.memory if search is not None else None
        if search is not None and search.outcome is not None:
            # A list is about no one product ("is it in stock?" must not answer for an older
            # one), unless it lists exactly one.
            listed = search.outcome.products
            only = listed[0].product_id if len(listed) == 1 else None
            state.context_product_id = result.context_product_id = only
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

    def _search(
        self,
        request: TurnRequest,
        state: SessionState,
        text: str,
        image: Image.Image | None,
        ticket_type: TicketType | None,
        named: str | None,
    ) -> SearchTurn | None:
        """A product search or a follow-up of the last one; never a turn with a photo, a pick,
        a ticket, or "it"/"这个" about the product in context."""
        if (
            self.catalogue_search is None
            or not text
            or image is not None
            or request.chosen_product_id
            or ticket_type is not None
            or state.ticket is not None
            or named is not None
            or (state.context_product_id and _is_follow_up(text))
        ):
            return None
        return self.catalogue_search.turn(
            text, state.product_search, bool(product_asks(text)), redact(text)
        )

    def _resolve_product(
        self,
        request: TurnRequest,
        state: SessionState,
        image: Image.Image | None,
        text: str,
        intent: Intent,
        named: str | None,
        ticket_turn: bool,
    ) -> Resolved:
        """The product this turn is about: picked, photographed, named, or carried from context."""
        if request.chosen_product_id:
            facts = self._facts(request.chosen_product_id)
            if facts is None:
                raise InputRejected(
                    f"unknown product {request.chosen_product_id!r}: pick one of the suggested products"
                )
            return Resolved(facts, confirmed=True)
        if image is not None:
            photo = self.perception.photo(image, self.config.photo_candidates)
            candidates = [
                f
                for f in (self._facts(c.product_id, c.matched_image) for c in photo.candidates)
                if f is not None
            ]
            top = photo.candidates[0].score if photo.candidates and candidates else None
            verdict = photo_verdict(top, photo.confident, self.config.photo_absent_below)
            return Resolved(
                candidates[0] if verdict == "match" else None,
                top or 0.0,
                candidates,
                verdict,
            )
        if named is not None:
            return Resolved(self._facts(named), confirmed=named in state.candidate_product_ids)
        if text and (intent in _PRODUCT_TEXT_INTENTS or ticket_turn) and not _is_follow_up(text):
            found = self._text_product(text)
            if found is not None:
                return Resolved(self._facts(found.product_id), found.dense_score)
        if state.context_product_id and (_is_follow_up(text) or product_asks(text)):
            return Resolved(self._facts(state.context_product_id))
        return Resolved(None, 0.0)

    def _text_product(self, text: str) -> ProductHit | None:
        """The product the message names, when its match is close enough to name it."""
        found = self.perception.products(text, 1)
        if found and found[0].dense_score >= self.config.product_text_min_score:
            return found[0]
        return None

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
        offered: CardRole | None,
    ) -> list[ProductCard]:
        if offered == "candidate" or (action == "clarify" and candidates):
            return [
                c.card(reason="possible match for the photo", role="candidate") for c in candidates
            ]
        if offered == "similar":
            return [
                c.card(reason="similar item: the one in the photo is not sold here", role="similar")
                for c in candidates
            ]
        return (
            [product.card(confidence, "product in this conversation")]
            if product is not None
            else []
        )

    def _picked(self, state: SessionState, text: str) -> str | None:
        """The product of the last offered list the message points at ("the second one", "the
        blue one", its name), if it points at exactly one."""
        if not state.candidate_product_ids or not text:
            return None
        hits = {hit.id: hit for hit in self.store.get("products", ids=state.candidate_product_ids)}
        offered = [
            ProductFacts.from_metadata(pid, hits[pid].metadata)
            for pid in state.candidate_product_ids
            if pid in hits
        ]
        return pick(text, offered)

    def _ticket_item(self, pending: Ticket | None, text: str) -> str | None:
        """The product a message names while a waiting ticket still needs to know the item; a
        question about a product's facts ("how much is the backpack?") is not that answer."""
        if (
            pending is None
            or "product" not in pending.missing
            or not text
            or _is_follow_up(text)
            or product_asks(text)
        ):
            return None
        found = self._text_product(text)
        return found.product_id if found is not None else None

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
        language: str,
        product: ProductFacts | None,
        candidates: list[ProductFacts],
        action: Action,
        intent: Intent,
        offered: CardRole | None,
    ) -> None:
        state.language = language
        state.turn_count += 1
        state.last_intent = intent.value
        if product is not None and action != "clarify":
            state.context_product_id = product.product_id
        elif offered:
            # "How much is it?" now asks about the photo, not about an earlier product.
            state.context_product_id = None
        state.candidate_product_ids = [c.product_id for c in candidates] if offered else []
        state.candidates_similar = offered == "similar"
        state.escalated = state.escalated or action == "escalate"


def _offered(
    action: Action, verdict: PhotoVerdict | None, candidates: list[ProductFacts]
) -> CardRole | None:
    """What the photo's matches are offered as: possible matches to pick from, similar items
    instead of a product not sold here, or nothing."""
    if not candidates:
        return None
    if action == "clarify" and verdict == "unsure":
        return "candidate"
    if action == "answer" and verdict == "absent":
        return "similar"
    return None


def _named_as(
    resolved: Resolved, verdict: PhotoVerdict | None, picked_similar: bool
) -> Literal["match", "similar"] | None:
    """Whether the reply names the product with its key facts: the photo showed it, or the
    customer picked it from a list (a possible match, or a similar item)."""
    if verdict == "match":
        return "match"
    if resolved.confirmed:
        return "similar" if picked_similar else "match"
    return None


def _with_search(data: ResponderInput, search: SearchTurn | None, language: str) -> ResponderInput:
    """A search answers with its list; a card picked from it with its price and stock."""
    if search is None:
        return data
    if search.outcome is not None:
        return replace(data, listing=search.outcome.listing(language))
    return replace(data, named_as="similar", asks=product_asks(data.question) or ["price", "stock"])


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
