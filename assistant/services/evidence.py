"""Evidence packs: why a turn came out as it did, computed after the reply and cached by id.

The engine hands every finished turn to `EvidenceService.submit`, which keeps the (downscaled,
metadata-free) photo beside the turn and, in background mode, queues the explanations on one
low-priority worker thread, so a reply is never delayed by them. A pack lives in
`DATA_DIR/evidence/<evidence id>/` (pack.json and the heatmap PNGs) and is erased with its
session. Packs that were never computed (on-demand mode, or a restart) are built when asked for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import structlog
from PIL import Image

from assistant.turn.memory import ConversationMemory
from assistant.turn.schemas import EvidencePack, TurnResult
from explain.text_shap import SessionTerms

if TYPE_CHECKING:
    from explain.gradcam import GradCam
    from explain.matcher_cam import MatcherCam
    from explain.pack import TextScorers
    from retrieval.heads.category import CategoryClassifier

EvidenceMode = Literal["background", "on_demand", "off"]

log = structlog.get_logger(__name__)

PACK_FILE = "pack.json"
PHOTO_FILE = "photo.jpg"
PHOTO_SIDE = 512
_SAFE_ID = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_")


def is_evidence_id(text: str) -> bool:
    """1-64 letters, digits, '-' or '_': what the engine issues, and never a path."""
    return bool(text) and len(text) <= 64 and set(text) <= _SAFE_ID


class EvidenceFolders:
    """One folder per evidence id; ids are checked so a request can never name another path."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, evidence_id: str) -> Path:
        if not is_evidence_id(evidence_id):
            raise ValueError(f"not an evidence id: {evidence_id!r}")
        return self.root / evidence_id

    def save_photo(self, evidence_id: str, photo: Image.Image) -> None:
        """A small RGB JPEG without metadata: enough for Grad-CAM, nothing from the upload's EXIF."""
        folder = self.folder(evidence_id)
        folder.mkdir(parents=True, exist_ok=True)
        small = photo.convert("RGB")
        small.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
        small.save(folder / PHOTO_FILE, format="JPEG", quality=90)

    def load_photo(self, evidence_id: str) -> Image.Image | None:
        path = self.folder(evidence_id) / PHOTO_FILE
        if not path.is_file():
            return None
        with Image.open(path) as image:
            return image.convert("RGB")

    def save_pack(self, pack: EvidencePack) -> None:
        """Written to a temporary name and renamed, so a reader never sees half a pack."""
        folder = self.folder(pack.evidence_id)
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".{PACK_FILE}.partial"
        staging.write_text(pack.model_dump_json(indent=2), encoding="utf-8")
        staging.replace(folder / PACK_FILE)

    def load_pack(self, evidence_id: str) -> EvidencePack | None:
        path = self.folder(evidence_id) / PACK_FILE
        if not path.is_file():
            return None
        return EvidencePack.model_validate_json(path.read_text(encoding="utf-8"))

    def file(self, evidence_id: str, name: str) -> Path | None:
        """A file of the pack (a heatmap PNG) by its bare name, or None."""
        if Path(name).name != name or name.startswith("."):
            return None
        path = self.folder(evidence_id) / name
        return path if path.is_file() else None

    def delete(self, evidence_ids: Iterable[str]) -> None:
        for evidence_id in evidence_ids:
            shutil.rmtree(self.folder(evidence_id), ignore_errors=True)


@dataclass
class Explainers:
    """How to explain: text scorers for a turn, Grad-CAM, the category head, product images."""

    text_scorers: Callable[[TurnResult, SessionTerms], TextScorers]
    gradcam: Callable[[], GradCam]
    category_classifier: Callable[[], CategoryClassifier | None]
    max_evals: int
    similarity_cam: Callable[[], GradCam | MatcherCam] | None = None
    """Grad-CAM of the model photo search ranks with (default: `gradcam`, the frozen one)."""


class EvidenceService:
    """Submit finished turns; get packs by evidence id (pending while being computed)."""

    def __init__(
        self,
        folders: EvidenceFolders,
        memory: ConversationMemory,
        explainers: Explainers,
        mode: EvidenceMode = "background",
    ) -> None:
        self.folders = folders
        self.memory = memory
        self.explainers = explainers
        self.mode = mode
        self._pending: dict[str, Future[EvidencePack]] = {}
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, result: TurnResult, photo: Image.Image | None) -> None:
        """Called by the engine after the turn is stored: keep the photo, queue the pack."""
        if self.mode == "off":
            return
        if photo is not None:
            self.folders.save_photo(result.evidence_id, photo)
        if self.mode == "background":
            self._schedule(result.evidence_id)

    def get(self, evidence_id: str) -> EvidencePack | None:
        """The pack (ready or failed), a pending pack while it is computed, None for an unknown
        (or malformed) id. Every front end looks packs up here."""
        if not is_evidence_id(evidence_id):
            return None
        stored = self.folders.load_pack(evidence_id)
        if stored is not None:
            return stored
        try:
            pending, _ = self._basics(evidence_id, "pending")
        except KeyError:
            return None
        if self.mode != "off":
            self._schedule(evidence_id)
        return pending

    def wait(self, evidence_id: str, timeout_s: float) -> EvidencePack | None:
        """Block until the pack is ready or failed, or `timeout_s` passes (then: pending)."""
        pack = self.get(evidence_id)
        if pack is None or pack.status != "pending":
            return pack
        with self._lock:
            future = self._pending.get(evidence_id)
        if future is not None:
            try:
                return future.result(timeout=timeout_s)
            except TimeoutError:
                return pack
        return self.folders.load_pack(evidence_id) or pack

    def explain(self, evidence_id: str, recompute: bool = False) -> EvidencePack:
        """The stored pack, or one computed now in this thread (always, with `recompute`);
        raises KeyError for an unknown id."""
        if not is_evidence_id(evidence_id):
            raise KeyError(f"no turn has evidence id {evidence_id!r}")
        stored = None if recompute else self.folders.load_pack(evidence_id)
        return stored or self.build(evidence_id)

    def build(self, evidence_id: str) -> EvidencePack:
        """Compute (or recompute) a pack now, in this thread; raises KeyError for unknown ids."""
        basics, result = self._basics(evidence_id, "ready")
        started = time.perf_counter()
        with self._build_lock:
            try:
                pack = self._explain(basics, result)
            except Exception as exc:  # a failed explanation must never take the service down
                log.exception("evidence_failed", evidence_id=evidence_id)
                pack = basics.model_copy(
                    update={"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                )
        pack.seconds = round(time.perf_counter() - started, 3)
        self.folders.save_pack(pack)
        return pack

    def heatmap_path(self, evidence_id: str, file_name: str) -> Path | None:
        """A file of the pack's folder by its bare name, or None."""
        return self.folders.file(evidence_id, file_name)

    def listed_heatmap(self, pack: EvidencePack, file_name: str) -> Path | None:
        """A heatmap PNG of the pack, only if the pack lists it (its folder also holds the
        customer's photo, which is never shown as a heatmap)."""
        if file_name not in {heatmap.file for heatmap in pack.heatmaps}:
            return None
        return self.heatmap_path(pack.evidence_id, file_name)

    def has_photo(self, evidence_id: str) -> bool:
        """Whether the turn came with a photo (kept for its explanation)."""
        return (
            is_evidence_id(evidence_id) and self.folders.file(evidence_id, PHOTO_FILE) is not None
        )

    def delete(self, evidence_ids: Iterable[str]) -> None:
        self.folders.delete(evidence_ids)

    def close(self) -> None:
        """Let queued packs finish (they are cheap to redo on demand if the process dies)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _schedule(self, evidence_id: str) -> None:
        with self._lock:
            if evidence_id in self._pending:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="evidence", initializer=_lower_priority
                )
            future = self._executor.submit(self.build, evidence_id)
            self._pending[evidence_id] = future
            future.add_done_callback(lambda _: self._forget(evidence_id))

    def _forget(self, evidence_id: str) -> None:
        with self._lock:
            self._pending.pop(evidence_id, None)

    def _basics(
        self, evidence_id: str, status: Literal["pending", "ready"]
    ) -> tuple[EvidencePack, TurnResult]:
        """Everything the stored turn already says, and the turn itself; the explanations are
        added by `_explain`. Raises KeyError for an unknown id."""
        found = self.memory.turn_by_evidence(evidence_id)
        if found is None:
            raise KeyError(f"no turn has evidence id {evidence_id!r}")
        session_id, record = found
        result = TurnResult.model_validate(record.result)
        history = self.memory.history(session_id)
        trend = [float(t.result["sentiment"]["trend"]) for t in history if t.index <= record.index]
        pack = EvidencePack(
            evidence_id=evidence_id,
            status=status,
            session_id=session_id,
            turn_index=record.index,
            language=result.language,
            text=record.text,
            reply=result.reply,
            decision=result.decision,
            citations=result.citations,
            products=result.products,
            sentiment=result.sentiment,
            sentiment_trend=trend,
            intent=result.intent,
            ticket=result.ticket,
        )
        return pack, result

    def _explain(self, pack: EvidencePack, result: TurnResult) -> EvidencePack:
        from explain.pack import photo_heatmaps, text_attributions

        session = SessionTerms(
            trend=result.sentiment.trend, unresolved=int(result.debug.get("unresolved", 0))
        )
        attributions = text_attributions(
            pack.text,
            pack.language,
            self.explainers.text_scorers(result, session),
            self.explainers.max_evals,
        )
        photo = self.folders.load_photo(pack.evidence_id)
        heatmaps = []
        if photo is not None:
            card = pack.products[0] if pack.products else None
            heatmaps = photo_heatmaps(
                self.explainers.gradcam(),
                photo,
                self.folders.folder(pack.evidence_id),
                catalogue=_open_image(card.image) if card and card.image else None,
                catalogue_title=card.title if card else "",
                classifier=self.explainers.category_classifier(),
                similarity=similarity() if (similarity := self.explainers.similarity_cam) else None,
            )
        return pack.model_copy(update={"attributions": attributions, "heatmaps": heatmaps})


def _open_image(path: str) -> Image.Image | None:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError:
        log.warning("evidence_catalogue_image_unreadable", path=path)
        return None


def _lower_priority() -> None:
    """Explanations run niced, so on a small CPU the replies of other customers go first."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
