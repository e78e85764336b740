"""Scripted conversations scored turn by turn (`shopsight eval conversations --scripts DIR`).

A script is a YAML file: a `kind` (what task it tests, e.g. `photo`, `damage`, `faq`), a
language, and turns of `text`, a photo (`photo:` a path under the data root, simulated as a
customer photo with the evaluation seed unless `simulate: false`; or `image:` a file beside the
script, sent as it is) or a carousel pick (`choose:`), each with what the turn must produce
(`expect:`). A script succeeds when every expectation of every turn holds; the report gives the
success rate per kind and the shop-level figures the conversation targets are stated in: right
product stated on photo turns, wrong product asserted, order number and policy right on
ticket turns, and the latency of text and photo turns as the client saw it.

The same scripts run in process (the engine on the configured store) or against a running
server over REST (`--url`), so a figure can be measured the way a shop's customer meets it.
"""

from __future__ import annotations

import io
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.turn.schemas import Action, ProductCard, TicketType, TurnRequest, TurnResult
from retrieval.evaluation.report import EvalReport
from retrieval.simulate import SimulationProtocol

# A money amount as replies state it ("167.22 USD", "¥ 58.90", "58.91"): two decimals.
MONEY = re.compile(r"(?<![\d.])\d{1,6}\.\d{2}(?![\d])")


class ScriptError(ValueError):
    """A script is malformed; the message names the file, the turn and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TicketExpectation(Strict):
    ticket_type: TicketType | None = None
    order_reference: str | None = None
    missing: list[str] | None = None
    policy_article_id: str | None = None


class CardExpectation(Strict):
    """What every listed product of an attribute search must satisfy, and how many must."""

    at_least: int = Field(3, ge=1)
    category: str | None = None
    title_has: list[str] = Field(default_factory=list)
    max_price: float | None = None
    min_price: float | None = None
    in_stock: bool = False
    precision: float = Field(0.8, ge=0, le=1, description="Share of the first five that must fit.")

    def fits(self, card: ProductCard) -> bool:
        words = set(re.findall(r"\w+", card.title.lower()))
        return (
            (self.category is None or card.category.lower() == self.category.lower())
            and all(word.lower() in words for word in self.title_has)
            and (
                self.max_price is None or (card.price is not None and card.price <= self.max_price)
            )
            and (
                self.min_price is None or (card.price is not None and card.price >= self.min_price)
            )
            and (not self.in_stock or bool(card.stock))
        )


class TurnExpectation(Strict):
    """What one turn must produce; every field left out is not checked."""

    decision: Action | None = None
    product: str | None = Field(None, description="The product the turn must assert first.")
    no_product_asserted: bool = Field(
        False, description="The turn must not answer as if it knew the product (absent photos)."
    )
    states: list[str] = Field(default_factory=list, description="Text the reply must contain.")
    price: str | None = Field(
        None, description="The one price the reply may state (every other amount is wrong)."
    )
    states_no_price: bool = Field(False, description="The reply must state no amount at all.")
    article: str | None = Field(None, description="An article id the turn must cite.")
    ticket: TicketExpectation | None = None
    cards: CardExpectation | None = None
    intent: str | None = None


class ScriptTurn(Strict):
    text: str = ""
    photo: str | None = Field(None, description="An image under the data root.")
    simulate: bool = True
    image: str | None = Field(None, description="An image file beside the script, sent as is.")
    choose: str | None = None
    expect: TurnExpectation = Field(default_factory=TurnExpectation)

    @model_validator(mode="after")
    def _something_to_send(self) -> ScriptTurn:
        if not (self.text or self.photo or self.image or self.choose):
            raise ValueError("a turn needs `text`, `photo`, `image` or `choose`")
        if self.photo and self.image:
            raise ValueError("give `photo` or `image`, not both")
        return self


class Script(Strict):
    kind: str = Field(min_length=1)
    lang: Literal["en", "zh"] | None = None
    description: str = ""
    turns: list[ScriptTurn] = Field(min_length=1)


class LoadedScript(BaseModel):
    name: str
    path: Path
    script: Script


def load_scripts(folder: Path) -> list[LoadedScript]:
    """Every `*.yaml` script under `folder`, sorted; a malformed one stops the run by name."""
    if not folder.is_dir():
        raise ScriptError(f"{folder}: no such folder of conversation scripts")
    paths = sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")])
    if not paths:
        raise ScriptError(f"{folder}: no *.yaml conversation scripts in it")
    loaded = []
    for path in paths:
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
            script = Script.model_validate(data)
        except (OSError, yaml.YAMLError) as exc:
            raise ScriptError(f"{path}: cannot read the script: {exc}") from exc
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise ScriptError(f"{path}: {where}: {problem['msg']}") from exc
        loaded.append(LoadedScript(name=str(path.relative_to(folder)), path=path, script=script))
    return loaded


class Failure(BaseModel):
    """One unmet expectation: which check (an expectation's field name) and what happened."""

    check: str
    message: str


class TurnOutcome(BaseModel):
    turn: int
    photo: bool
    failures: list[Failure]
    seconds: float
    reply: str
    result: dict[str, Any] = Field(default_factory=dict)


class ScriptOutcome(BaseModel):
    name: str
    kind: str
    lang: str
    turns: list[TurnOutcome]

    @property
    def passed(self) -> bool:
        return all(not turn.failures for turn in self.turns)


SendTurn = Callable[[TurnRequest], TurnResult]


class PhotoMaker:
    """Script photos as bytes: data-root images simulated as customer photos (seeded)."""

    def __init__(self, data_root: Path, protocol: SimulationProtocol | None = None) -> None:
        self.data_root = data_root
        self.protocol = protocol or SimulationProtocol()

    def __call__(self, turn: ScriptTurn, script: LoadedScript) -> bytes | None:
        if turn.image:
            return _read(script.path.parent / turn.image, script)
        if not turn.photo:
            return None
        raw = _read(self.data_root / turn.photo, script)
        if not turn.simulate:
            return raw
        with Image.open(io.BytesIO(raw)) as image:
            photo = self.protocol(image)
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()


def _read(path: Path, script: LoadedScript) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{script.path}: cannot read the photo {path}: {exc}") from exc


def run_script(script: LoadedScript, send: SendTurn, photos: PhotoMaker) -> ScriptOutcome:
    """Play one script in a fresh session and check each turn against what it expects."""
    session = f"eval-{script.name.replace('/', '-').rsplit('.', 1)[0]}-{time.time_ns() % 10**9}"
    outcomes = []
    for number, turn in enumerate(script.script.turns, start=1):
        image = photos(turn, script)
        request = TurnRequest(
            session_id=session[:128],
            text=turn.text,
            image=image,
            lang=script.script.lang,
            chosen_product_id=turn.choose,
        )
        started = time.perf_counter()
        result = send(request)
        seconds = time.perf_counter() - started
        outcomes.append(
            TurnOutcome(
                turn=number,
                photo=image is not None,
                failures=check_turn(turn.expect, result),
                seconds=seconds,
                reply=result.reply,
                result=_summary(result),
            )
        )
    return ScriptOutcome(
        name=script.name,
        kind=script.script.kind,
        lang=script.script.lang or "auto",
        turns=outcomes,
    )


def _summary(result: TurnResult) -> dict[str, Any]:
    """The parts of a turn a reader of a failure needs, not the whole result."""
    return {
        "decision": result.decision.action,
        "reasons": result.decision.reasons,
        "intent": str(result.intent.intent),
        "products": [card.product_id for card in result.products[:6]],
        "asserted": asserted_product(result),
        "cited": [citation.source_id for citation in result.citations],
        "ticket": result.ticket.model_dump(include=set(TicketExpectation.model_fields))
        if result.ticket
        else None,
    }


def asserted_product(result: TurnResult) -> str | None:
    """The product a turn answers about as if it knew it: an answer whose first card is that
    product (not a candidate to pick, a similar item offered instead, or a search result)."""
    if result.decision.action != "answer" or not result.products:
        return None
    first = result.products[0]
    return first.product_id if first.role == "product" else None


def check_turn(expect: TurnExpectation, result: TurnResult) -> list[Failure]:
    """Each unmet expectation, named by its field (empty: the turn did what it should)."""
    failures: list[Failure] = []

    def fail(check: str, message: str) -> None:
        failures.append(Failure(check=check, message=message))

    reply = result.reply
    if expect.decision and result.decision.action != expect.decision:
        fail("decision", f"decision {result.decision.action}, expected {expect.decision}")
    if expect.intent and str(result.intent.intent) != expect.intent:
        fail("intent", f"intent {result.intent.intent}, expected {expect.intent}")
    asserted = asserted_product(result)
    if expect.product and asserted != expect.product:
        fail("product", f"asserted product {asserted}, expected {expect.product}")
    if expect.no_product_asserted and asserted is not None:
        fail("no_product_asserted", f"asserted {asserted}, a product the shop does not sell")
    for text in expect.states:
        if text not in reply:
            fail("states", f"reply lacks {text!r}")
    amounts = set(MONEY.findall(reply))
    if expect.price is not None:
        if expect.price not in amounts:
            fail("price", f"reply does not state the price {expect.price}")
        if wrong := amounts - {expect.price}:
            fail("price", f"reply states other amounts {sorted(wrong)}")
    if expect.states_no_price and amounts:
        fail("states_no_price", f"reply states {sorted(amounts)} before the product is confirmed")
    cited = [citation.source_id for citation in result.citations]
    if expect.article and expect.article not in cited:
        fail("article", f"cites {cited}, expected {expect.article}")
    if expect.ticket:
        failures += _check_ticket(expect.ticket, result)
    if expect.cards and (problem := _check_cards(expect.cards, result.products)):
        fail("cards", problem)
    return failures


def _check_ticket(expect: TicketExpectation, result: TurnResult) -> list[Failure]:
    wanted_fields = expect.model_dump(exclude_none=True)
    if result.ticket is None:
        return [Failure(check=f"ticket.{f}", message="no ticket opened") for f in wanted_fields]
    failures = []
    for field, wanted in wanted_fields.items():
        got = getattr(result.ticket, field)
        if (sorted(got) if isinstance(got, list) else got) != (
            sorted(wanted) if isinstance(wanted, list) else wanted
        ):
            message = f"ticket {field} {got!r}, expected {wanted!r}"
            failures.append(Failure(check=f"ticket.{field}", message=message))
    return failures


def _check_cards(expect: CardExpectation, cards: list[ProductCard]) -> str | None:
    if len(cards) < expect.at_least:
        return f"{len(cards)} products listed, expected at least {expect.at_least}"
    first = cards[:5]
    fit = sum(expect.fits(card) for card in first) / len(first)
    if fit < expect.precision:
        return f"{fit:.0%} of the first {len(first)} products fit, expected {expect.precision:.0%}"
    return None


def warm_up(send: SendTurn) -> None:
    """One text and one photo turn, neither scored nor timed, so the latency figures are those
    of a running service and not of models loading on first use."""
    probe = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(probe, format="JPEG")
    send(TurnRequest(session_id="eval-warm-up", text="hello"))
    send(TurnRequest(session_id="eval-warm-up", text="what is this?", image=probe.getvalue()))


def run_scripts(
    scripts: Iterable[LoadedScript],
    send: SendTurn,
    photos: PhotoMaker,
    progress: Callable[[ScriptOutcome], None] | None = None,
) -> list[ScriptOutcome]:
    """Every script after a warm-up, in order, each in a session of its own."""
    warm_up(send)
    outcomes = []
    for script in scripts:
        outcome = run_script(script, send, photos)
        outcomes.append(outcome)
        if progress:
            progress(outcome)
    return outcomes


def _rate(hits: int, total: int) -> float:
    return round(hits / total, 4) if total else float("nan")


def shop_figures(scripts: list[LoadedScript], outcomes: list[ScriptOutcome]) -> dict[str, float]:
    """The conversation targets, counted over the turns that test each one."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def count(name: str, hit: bool) -> None:
        counts[name][0] += int(hit)
        counts[name][1] += 1

    for script, outcome in zip(scripts, outcomes, strict=True):
        for turn, done in zip(script.script.turns, outcome.turns, strict=True):
            expect, failed = turn.expect, {failure.check for failure in done.failures}
            asserted = done.result["asserted"]
            if done.photo and expect.product:
                count("photo_right_product_stated", "product" not in failed)
                count("photo_wrong_product_asserted", asserted not in (None, expect.product))
            if done.photo and expect.no_product_asserted:
                count("absent_product_asserted", asserted is not None)
            if expect.ticket and expect.ticket.order_reference:
                count("order_number_right", "ticket.order_reference" not in failed)
            if expect.ticket and expect.ticket.policy_article_id:
                count("policy_right", "ticket.policy_article_id" not in failed)
            if expect.article:
                count("article_cited_right", "article" not in failed)
            if expect.cards:
                count("search_cards_fit", "cards" not in failed)
    return {name: _rate(hit, total) for name, (hit, total) in sorted(counts.items())} | {
        f"{name}_turns": float(total) for name, (_, total) in sorted(counts.items())
    }


def conversation_report(
    scripts: list[LoadedScript], outcomes: list[ScriptOutcome], data: str, target: str
) -> EvalReport:
    """Task success per kind and language, the shop figures, latency, and every failure."""
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for outcome in outcomes:
        by_kind[outcome.kind].append(outcome.passed)
        by_kind[f"{outcome.kind}/{outcome.lang}"].append(outcome.passed)
    metrics: dict[str, float] = {
        "scripts": float(len(outcomes)),
        "task_success": _rate(sum(o.passed for o in outcomes), len(outcomes)),
    }
    metrics |= {
        f"success_{kind}": _rate(sum(passes), len(passes))
        for kind, passes in sorted(by_kind.items())
    }
    metrics |= shop_figures(scripts, outcomes)
    for label, photo in (("text", False), ("photo", True)):
        times = [t.seconds * 1000 for o in outcomes for t in o.turns if t.photo == photo]
        if times:
            metrics[f"{label}_turn_p50_ms"] = round(float(np.percentile(times, 50)), 1)
            metrics[f"{label}_turn_p95_ms"] = round(float(np.percentile(times, 95)), 1)
            metrics[f"{label}_turns"] = float(len(times))
    failures = [
        {
            "script": o.name,
            "turn": t.turn,
            "failures": [failure.message for failure in t.failures],
            "reply": t.reply,
            **t.result,
        }
        for o in outcomes
        for t in o.turns
        if t.failures
    ]
    return EvalReport(
        task="conversations",
        data=data,
        metrics=metrics,
        details={
            "what the metrics mean": (
                "task_success: share of scripts whose every turn met every expectation; "
                "success_<kind>[/<lang>]: the same per kind and language. "
                "photo_right_product_stated: photo turns of a sold product that answered with it "
                "first; photo_wrong_product_asserted: those answered with another product; "
                "absent_product_asserted: photos of products the shop does not sell answered as "
                "if known; order_number_right / policy_right: ticket turns with the expected "
                "order reference / policy article; latency is per turn as the client saw it, after "
                "one warm-up text and photo turn."
            ),
            "target": target,
            "failures": failures,
        },
    )


class ServerRefused(RuntimeError):
    """The server answered a scripted turn with an error; the message quotes it."""


def rest_sender(url: str, api_key: str | None = None, timeout_s: float = 60.0) -> SendTurn:
    """Send turns to a running server's `POST /v1/chat` as JSON (the photo base64), as a chat
    client would; each result is the public turn the server returned."""
    import base64

    import httpx

    client = httpx.Client(
        base_url=url.rstrip("/"),
        timeout=timeout_s,
        headers={"X-API-Key": api_key} if api_key else {},
    )

    def send(request: TurnRequest) -> TurnResult:
        body: dict[str, Any] = request.model_dump(exclude={"image"}, exclude_none=True)
        if request.image is not None:
            body["image"] = base64.b64encode(request.image).decode("ascii")
        try:
            response = client.post("/v1/chat", json=body)
        except httpx.HTTPError as exc:
            raise ServerRefused(
                f"cannot reach {url}: {exc}; is `shopsight serve` running?"
            ) from exc
        if response.status_code != 200:
            raise ServerRefused(f"{url}/v1/chat answered {response.status_code}: {response.text}")
        return TurnResult.model_validate(response.json())

    return send
