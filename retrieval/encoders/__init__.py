"""Text and image encoders, the static embedder, a local CLIP, the feature cache, the registry."""
