"""What the shop knows: schema, loaders, chunking, the Chroma store and ingestion."""
