"""Finding things: text and image encoders, search over the knowledge base, trained heads."""
