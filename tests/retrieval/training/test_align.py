"""Alignment trainer: each trained head is a new `align-vN`, and search loads the newest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.heads.alignment import artifact_dir, load_alignment_head
from retrieval.training.align import AlignmentConfig, train_head
from tests.retrieval.heads.test_alignment import synthetic_pairs

pytestmark = pytest.mark.unit


def test_retraining_adds_a_version_and_the_newest_head_loads(tmp_path: Path) -> None:
    features, texts = synthetic_pairs(20)
    names = [f"p{i}" for i in range(20)]
    heads = []
    for seed in (0, 1):
        config = AlignmentConfig(hidden=0, epochs=2, seed=seed)
        head, _ = train_head(features, texts, names, names, config, False)
        head.meta["text_embedder"] = "hash"
        heads.append(head.save(artifact_dir(tmp_path)))
    assert [folder.name for folder in heads] == ["align-v1", "align-v2"]
    meta = json.loads((heads[1] / "meta.json").read_text())
    assert (meta["name"], meta["version"]) == ("align", 2) and "metrics" in meta
    loaded = load_alignment_head(tmp_path, "hash")
    assert loaded is not None and loaded.fingerprint == meta["fingerprint"]
