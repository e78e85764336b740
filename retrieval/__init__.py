"""Finding things: text and image encoders, search over the knowledge base, trained heads.

- `encoders`: text embedders, the static embedder, the image encoder, a local CLIP, the feature
  cache and the model registry.
- `search`: result types, filters, BM25, hybrid search (one RRF), the photo matcher, text→image.
- `heads`: the trained category, alignment and photo-match heads (inference and loading).
- `training`, `evaluation`: how those heads are fitted and scored.
"""

from knowledge_base.moved import alias_moved_modules

alias_moved_modules(
    {
        "retrieval.embedders": "retrieval.encoders.text",
        "retrieval.static_embedder": "retrieval.encoders.static",
        "retrieval.image_encoder": "retrieval.encoders.image",
        "retrieval.clip_local": "retrieval.encoders.clip_local",
        "retrieval.features": "retrieval.encoders.features",
        "retrieval.models": "retrieval.encoders.registry",
        "retrieval.bm25": "retrieval.search.bm25",
        "retrieval.tokenize": "retrieval.search.tokenize",
        "retrieval.hybrid": "retrieval.search.hybrid",
        "retrieval.photo_search": "retrieval.search.photo",
        "retrieval.cross_modal": "retrieval.search.cross_modal",
        "retrieval.category": "retrieval.heads.category",
        "retrieval.alignment": "retrieval.heads.alignment",
        "retrieval.offline": "knowledge_base.offline",
    }
)
