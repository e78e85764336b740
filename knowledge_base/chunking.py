"""Split long articles into overlapping chunks that each fit an embedder and read as a citation."""

from __future__ import annotations

from langchain_text_splitters import RecursiveCharacterTextSplitter

from knowledge_base.schema import Article, Chunk

# Paragraphs first, then sentences in English and Chinese, then words.
_SEPARATORS = ["\n\n", "\n", "。", "！", "？", ". ", "! ", "? ", "；", "; ", "，", ", ", " ", ""]


def chunk_article(article: Article, size: int, overlap: int) -> list[Chunk]:
    """Chunks of at most `size` characters; each carries its article's title and position."""
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=size,
        chunk_overlap=min(overlap, size // 2),
        separators=_SEPARATORS,
        keep_separator="end",
    )
    pieces = [piece.strip() for piece in splitter.split_text(article.body) if piece.strip()]
    return [
        Chunk(
            id=f"{article.id}#{position}",
            article_id=article.id,
            title=article.title,
            text=piece,
            position=position,
            language=article.language,
            tags=article.tags,
            kind=article.kind,
        )
        for position, piece in enumerate(pieces or [article.body.strip()])
    ]
