"""The use cases every front end shares: chat turns, the knowledge base, evidence, review."""
