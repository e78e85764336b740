"""Wiring: builds the store, models and searchers from `Settings`, lazily and once."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from assistant.perception.intent import IntentClassifier
from assistant.perception.intents import SHOP_INTENTS, Intent, to_intent
from assistant.perception.language import Language
from assistant.perception.models import ModelPerception
from assistant.perception.sentiment import SentimentAnalyzer
from assistant.perception.sentiment import latest_model_dir as latest_sentiment_dir
from assistant.services.evidence import EvidenceFolders, EvidenceService, Explainers
from assistant.services.kb import KnowledgeService
from assistant.settings import Settings
from assistant.turn.engine import Engine, EngineConfig
from assistant.turn.memory import ConversationMemory
from assistant.turn.policy import PolicyInput, PolicyThresholds, decide
from assistant.turn.product_search import CatalogueSearch
from assistant.turn.safety import Limits
from assistant.turn.schemas import TurnResult
from knowledge_base.backup import BackupSources
from knowledge_base.ingest import IngestOptions, Ingestor
from knowledge_base.lock import Role, StoreLock
from knowledge_base.mirror import MirrorReport, PathEmbedder, is_synced, sync_mirror
from knowledge_base.store import HnswSettings, KnowledgeStore
from retrieval.encoders.image import ImageEncoder
from retrieval.encoders.registry import get_image_encoder, get_stage_encoder, get_text_embedder
from retrieval.encoders.text import TextEmbedder
from retrieval.heads.category import CategoryClassifier, load_latest
from retrieval.heads.photo_embedding import ARTEFACT as PHOTO_EMBED
from retrieval.heads.photo_embedding import (
    TrainedFeatureCache,
    TrainedMatcher,
    load_trained_matcher,
)
from retrieval.search.hybrid import HybridOptions, HybridSearcher, SearchFilters
from retrieval.search.photo import (
    MatcherConfig,
    MirroredStoreIndex,
    PhotoMatcher,
    PhotoSearchResult,
    StoreImageIndex,
    load_artefact,
)

if TYPE_CHECKING:
    from assistant.turn.drafting import Drafter
    from explain.gradcam import GradCam
    from explain.matcher_cam import MatcherCam
    from explain.pack import TextScorers
    from explain.text_shap import SessionTerms
    from explain.types import EscalationPolicy, EscalationSignals


class Components:
    """Everything a command, the API or the UI needs, built on first use from one `Settings`."""

    def __init__(self, settings: Settings, progress: bool = True) -> None:
        self.settings = settings
        self.progress = progress
        self._lock = threading.Lock()
        self._cam: GradCam | None = None
        self._matcher_cams: dict[str, MatcherCam] = {}

    @cached_property
    def store(self) -> KnowledgeStore:
        s = self.settings
        return KnowledgeStore(
            path=None if s.chroma_url else s.resolved_chroma_path,
            url=s.chroma_url,
            prefix=s.collection_prefix,
            hnsw=HnswSettings(s.hnsw_m, s.hnsw_construction_ef, s.hnsw_search_ef),
        )

    def store_lock(self) -> StoreLock | None:
        """The writer lock of the embedded store (None with a Chroma server, which orders
        writes itself); known without opening the store, so a refusal comes at once."""
        s = self.settings
        return None if s.chroma_url else StoreLock(s.resolved_chroma_path)

    @contextmanager
    def writing(self, role: Role = "command") -> Iterator[None]:
        """Be the embedded store's one writer meanwhile; raises `StoreLocked` (naming the
        holder) at once when another process is."""
        lock = self.store_lock()
        if lock is None:
            yield
            return
        lock.acquire(role)
        try:
            yield
        finally:
            lock.release()

    def backup_sources(self) -> BackupSources:
        """What `kb backup` copies and `kb restore` puts back: the embedded store, the uploads
        its products' images live in, the trained models, and a SQLite conversation database
        (a Chroma server and PostgreSQL have their own tools)."""
        from sqlalchemy.engine import make_url

        s = self.settings
        url = make_url(s.resolved_database_url)
        databases = (
            {"sessions.db": Path(url.database)}
            if url.get_backend_name() == "sqlite" and url.database
            else {}
        )
        return BackupSources(
            chroma=None if s.chroma_url else s.resolved_chroma_path,
            prefix=s.collection_prefix,
            folders={"uploads": s.data_dir / "uploads", "artifacts": s.artifacts_dir},
            databases=databases,
        )

    @cached_property
    def text_embedder(self) -> TextEmbedder:
        return get_text_embedder(self.settings.text_embedder, self.settings.cache_dir)

    @property
    def image_encoder(self) -> ImageEncoder:
        return get_image_encoder()

    @cached_property
    def ingestor(self) -> Ingestor:
        s = self.settings
        options = IngestOptions(
            batch_size=s.ingest_batch_size,
            chunk_size=s.chunk_size,
            chunk_overlap=s.chunk_overlap,
            max_image_pixels=s.max_image_pixels,
            max_image_side=s.max_image_side,
            progress=self.progress,
        )
        from knowledge_base.loaders import LoadResult
        from retrieval.autotag import AutotagReport, autotag

        def tag_uncategorised(loaded: LoadResult) -> AutotagReport:
            """Colour tags always; a category too when `shopsight train category` saved a model
            (its photo features are cached, and it is loaded only when a product needs it)."""
            needed = any(p.images and not p.category for p in loaded.products)
            classifier = self.category_classifier if needed else None
            return autotag(
                loaded,
                classifier,
                cache=classifier.feature_cache(s.data_dir / "cache") if classifier else None,
                max_pixels=s.max_image_pixels,
                max_side=s.max_image_side,
            )

        return Ingestor(
            self.store,
            self.text_embedder,
            get_image_encoder,
            ImageEncoder.name,
            options,
            autotagger=tag_uncategorised,
            on_images_changed=self._images_changed,
        )

    @cached_property
    def memory(self) -> ConversationMemory:
        return ConversationMemory(self.settings.resolved_database_url)

    @cached_property
    def hybrid_searcher(self) -> HybridSearcher:
        options = HybridOptions(exact_dense=self.settings.text_index == "exact")
        return HybridSearcher(self.store, self.text_embedder, options)

    @cached_property
    def kb(self) -> KnowledgeService:
        """Ingest and search as every front end uses them; one ingest lock per process."""
        return KnowledgeService(self)

    @cached_property
    def category_classifier(self) -> CategoryClassifier | None:
        """The trained category head, when `shopsight train category` has saved one."""
        return load_latest(self.settings.artifacts_dir)

    @cached_property
    def image_index(self) -> StoreImageIndex | MirroredStoreIndex:
        """Where the frozen matcher looks for images: the HNSW graph, or an exact copy."""
        return self._image_index(self.store, ImageEncoder.name)

    def _image_index(
        self, store: KnowledgeStore, encoder_name: str
    ) -> StoreImageIndex | MirroredStoreIndex:
        if self.settings.photo_index == "exact":
            return MirroredStoreIndex(store, encoder_name)
        return StoreImageIndex(store, encoder_name)

    @cached_property
    def trained_photo(self) -> TrainedMatcher | None:
        """The newest `photo-embed-vN` that `shopsight train photo-match` saved, if any."""
        return load_trained_matcher(self.settings.artifacts_dir)

    def photo_model_in_use(self) -> str:
        """The encoder photo search uses: the trained matcher once the store holds its vectors
        of every image (`shopsight kb reembed`), the frozen encoder until then."""
        trained = self.trained_photo
        if trained is not None and is_synced(
            self.store, trained.encoder_name, trained.encoder_name
        ):
            return trained.encoder_name
        return ImageEncoder.name

    def _photo_embedder(self, trained: TrainedMatcher) -> PathEmbedder:
        """Catalogue files → trained vectors, through the stage-feature cache that training
        filled, decoded as training decoded them, so re-embedding a trained catalogue is cheap."""
        cache = TrainedFeatureCache(
            self.settings.data_dir / "cache", trained.encoder(get_stage_encoder())
        )
        return lambda paths: cache.features(paths, progress=False)

    def sync_photo_vectors(self, progress: bool | None = None) -> MirrorReport | None:
        """Embed the stored images with the trained matcher (resuming a killed run) and drop the
        vectors of older trained versions; None when no trained matcher exists."""
        trained = self.trained_photo
        if trained is None:
            return None
        name = trained.encoder_name
        report = sync_mirror(
            self.store,
            name,
            name,
            self._photo_embedder(trained),
            progress=self.progress if progress is None else progress,
        )
        for space in self.store.mirror_spaces():
            if space != name and space.startswith(PHOTO_EMBED):
                self.store.drop_mirror(space)
        return report

    def _images_changed(self) -> None:
        """This process wrote image records: the trained vectors follow them (all of them when
        the store is new to the trained matcher, e.g. re-ingested after a reset), and exact
        copies must be reloaded before next use."""
        if self.trained_photo is not None:
            self.sync_photo_vectors()
        built = [self.__dict__.get("image_index"), self.__dict__.get("photo_matcher")]
        for index in (getattr(part, "index", part) for part in built):
            if isinstance(index, MirroredStoreIndex):
                index.refresh()

    @cached_property
    def photo_matcher(self) -> PhotoMatcher:
        """The trained matcher when its vectors are in the store, else the frozen one."""
        classifier = self.category_classifier
        predictor = None
        if classifier is not None:

            def predictor(images: Sequence[Image.Image]) -> list[tuple[str, float]]:
                return [(p.label, p.confidence) for p in classifier.predict(images)]

        trained = self.trained_photo
        if trained is not None and self.photo_model_in_use() == trained.encoder_name:
            name = trained.encoder_name
            config = dict(trained.meta.get("config", {}))
            config["views"] = tuple(config.get("views", MatcherConfig.views))
            return PhotoMatcher(
                self._image_index(self.store.mirror(name), name),
                trained.encoder(get_stage_encoder()),
                category_predictor=predictor,
                calibrator=trained.calibrator,
                config=MatcherConfig(**config),
            )
        calibrator, frozen_config = load_artefact(self.settings.artifacts_dir) or (None, None)
        return PhotoMatcher(
            self.image_index,
            self.image_encoder,
            category_predictor=predictor,
            calibrator=calibrator,
            config=frozen_config,
        )

    def search_photo(
        self, photo: Image.Image, k: int, filters: SearchFilters | None = None
    ) -> PhotoSearchResult:
        """Products that look like `photo`, by the photo matcher (multi-view query, category
        agreement, calibrated confidence), within the catalogue filters."""
        # Refuses a store whose image vectors came from another encoder.
        self.store.collection("images", encoder=ImageEncoder.name)
        matcher = self.photo_matcher
        filters = filters or SearchFilters()
        # Image records carry their product's id and category only: the other filters become
        # the ids of the products that pass them.
        conditions = filters.model_copy(
            update={"min_price": None, "max_price": None, "in_stock": None, "language": None}
        ).conditions()
        by_product = filters.model_copy(update={"category": None, "product_id": None}).to_where()
        allowed = self.store.ids("products", where=by_product) if by_product else None
        if allowed == []:
            return PhotoSearchResult(
                matches=[], confident=False, confidence=0.0, threshold=matcher.calibrator.threshold
            )
        if allowed is not None:
            conditions.append({"product_id": {"$in": allowed}})
        # Chroma refuses an `$and` with fewer than two operands.
        where = conditions[0] if len(conditions) == 1 else {"$and": conditions}
        return matcher.search(photo, k=k, where=where if conditions else None)

    @cached_property
    def sentiment(self) -> SentimentAnalyzer:
        """The newest trained `sentiment-vN` heads under the artefacts, else the lexicon models."""
        folder = latest_sentiment_dir(self.settings.artifacts_dir)
        return SentimentAnalyzer(folder, use_trained=folder is not None)

    @cached_property
    def intent(self) -> IntentClassifier:
        return IntentClassifier.from_settings(self.settings.data_dir, self.settings.text_embedder)

    @cached_property
    def policy_thresholds(self) -> PolicyThresholds:
        """The thresholds the engine decides with, and its explanations are scored with."""
        s = self.settings
        return PolicyThresholds(
            angry_trend=s.escalation_trend,
            angry_streak=s.escalation_streak,
            unresolved_repeats=s.unresolved_repeats,
        )

    @cached_property
    def engine(self) -> Engine:
        s = self.settings
        config = EngineConfig(
            limits=Limits(
                max_text_chars=s.max_text_chars,
                max_upload_bytes=int(s.max_upload_mb * 1024 * 1024),
                max_image_pixels=s.max_image_pixels,
                max_image_side=s.max_image_side,
            ),
            thresholds=self.policy_thresholds,
            article_min_score=s.article_min_score,
            product_text_min_score=s.product_text_min_score,
        )
        perception = ModelPerception(
            self.sentiment, self.intent, self.photo_matcher, self.hybrid_searcher
        )
        return Engine(
            perception,
            self.store,
            self.memory,
            config,
            on_turn=self.evidence.submit,
            drafter=self.drafter,
            catalogue=CatalogueSearch(self.hybrid_searcher, self.store),
        )

    @cached_property
    def drafter(self) -> Drafter | None:
        """The configured chat model for drafting replies, or None (grounded replies only)."""
        from assistant.turn.chat_models import build_chat_model
        from assistant.turn.drafting import Drafter

        s = self.settings
        model = build_chat_model(
            s.drafter,
            s.drafter_base_url,
            s.drafter_model,
            s.drafter_api_key.get_secret_value() if s.drafter_api_key else None,
            s.drafter_timeout_s,
            s.drafter_max_tokens,
        )
        return Drafter(model, s.drafter_model or s.drafter) if model is not None else None

    @cached_property
    def evidence(self) -> EvidenceService:
        """Evidence packs of turns: explanations computed after the reply, cached by id."""
        s = self.settings
        explainers = Explainers(
            text_scorers=self._text_scorers,
            gradcam=self.gradcam,
            category_classifier=lambda: self.category_classifier,
            max_evals=s.shap_max_evals,
            similarity_cam=self.similarity_cam,
        )
        return EvidenceService(
            EvidenceFolders(s.evidence_dir), self.memory, explainers, s.evidence_mode
        )

    def delete_session(self, session_id: str) -> bool:
        """Erase a conversation: its turns, its state and every evidence pack of its turns."""
        evidence_ids = [turn.evidence_id for turn in self.memory.history(session_id)]
        existed = self.memory.delete(session_id)
        self.evidence.delete(evidence_ids)
        return existed

    def gradcam(self) -> GradCam:
        """Grad-CAM over the frozen encoder: the category heatmap, and matches until a trained
        matcher is in use."""
        from explain.gradcam import GradCam

        with self._lock:
            if self._cam is None:
                self._cam = GradCam(self.image_encoder)
            return self._cam

    def similarity_cam(self) -> GradCam | MatcherCam:
        """Grad-CAM of the model photo search ranks with now: the trained matcher once the store
        holds its vectors, the frozen encoder until then."""
        from explain.matcher_cam import MatcherCam

        trained = self.trained_photo
        if trained is None or self.photo_model_in_use() != trained.encoder_name:
            return self.gradcam()
        with self._lock:
            cam = self._matcher_cams.get(trained.encoder_name)
            if cam is None:
                cam = MatcherCam(get_stage_encoder(), trained.head)
                self._matcher_cams = {trained.encoder_name: cam}
            return cam

    def _text_scorers(self, result: TurnResult, session: SessionTerms) -> TextScorers:
        """The models that decided `result`, as batched score functions for SHAP.

        Intent probabilities are summed into shop intents, so the explained output is the
        intent the customer and the escalation rules saw, whatever labels the model has.
        """
        from explain.pack import TextScorers

        language: Language = "zh" if result.language == "zh" else "en"
        classifier = self.intent
        model = (
            classifier.fewshot
            if result.intent.model == classifier.fewshot.name
            else classifier.model
        )
        to_shop = np.zeros((len(model.classes), len(SHOP_INTENTS)))
        for row, label in enumerate(model.classes):
            to_shop[row, SHOP_INTENTS.index(model.to_intent(label).value)] = 1.0

        def intent_probabilities(texts: list[str]) -> np.ndarray:
            return np.asarray(model.predict_proba_batch(texts)) @ to_shop

        return TextScorers(
            sentiment=lambda texts: self.sentiment.score_batch(texts, language),
            sentiment_model=self.sentiment.model_name(language),
            escalation=escalation_policy(self.policy_thresholds),
            intent=intent_probabilities,
            intent_classes=SHOP_INTENTS,
            intent_model=model.name,
            intent_target=result.intent.intent.value,
            session=session,
        )


def escalation_policy(thresholds: PolicyThresholds) -> EscalationPolicy:
    """The escalation score of one message exactly as `decide` computes it with `thresholds`,
    for SHAP: the explained score is the `Decision.escalation_score` of the same inputs.

    Only the score is read, so the inputs that decide nothing but the action (photo, answer,
    ambiguity, the negative streak) are neutral.
    """

    def score(signals: EscalationSignals) -> float:
        data = PolicyInput(
            text=signals.text,
            intent=to_intent(signals.intent or ""),
            intent_confidence=signals.intent_confidence,
            sentiment_score=signals.sentiment,
            sentiment_trend=signals.trend,
            consecutive_negative=0,
            unresolved_count=signals.unresolved,
            photo_given=False,
            photo_confident=False,
            has_answer=True,
            ambiguous=False,
            p_human=signals.probabilities.get(Intent.HUMAN_AGENT.value, 0.0),
            p_complaint=signals.probabilities.get(Intent.COMPLAINT.value, 0.0),
        )
        return decide(data, thresholds).escalation_score

    return score
