"""Sources, the passages they are cut into, and chunks of passages sized for one model call."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.summarize.tokens import estimate_counts, estimate_tokens

_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCES = re.compile(r"(?<=[.!?।])\s+")


@dataclass(frozen=True)
class Source:
    """A citable piece of input: a finding, a paragraph of a document, a chat message."""

    id: str
    text: str
    title: str = ""
    url: str | None = None


@dataclass(frozen=True)
class Passage:
    """A piece of one source small enough to sit in a chunk; it cites its source's id."""

    source_id: str
    text: str
    tokens: int
    """Prompt tokens of the passage: its text and its source's title."""
    title: str = ""


def document_sources(document_id: str, text: str, *, title: str = "") -> list[Source]:
    """One source per paragraph of a long document, with ids `<document_id>#p<n>` (1-based).

    Citations then point at paragraphs rather than at the whole document.
    """
    paragraphs = [p.strip() for p in _PARAGRAPHS.split(text) if p.strip()]
    return [Source(id=f"{document_id}#p{n}", text=p, title=title) for n, p in enumerate(paragraphs, start=1)]


def split_passages(sources: Iterable[Source], max_tokens: int) -> list[Passage]:
    """Cut every source into passages of at most `max_tokens`: by paragraph, then sentence, then words.

    A source's title counts against each of its passages, since the prompt may repeat it.
    """
    passages: list[Passage] = []
    for source in sources:
        for paragraph in _PARAGRAPHS.split(source.text):
            for piece in _fit(paragraph.strip(), max(16, max_tokens - estimate_tokens(source.title))):
                tokens = estimate_tokens(piece) + estimate_tokens(source.title)
                passages.append(Passage(source_id=source.id, text=piece, tokens=tokens, title=source.title))
    return passages


def _fit(text: str, max_tokens: int) -> list[str]:
    if not text:
        return []
    if estimate_tokens(text) <= max_tokens:
        return [text]
    sentences = _SENTENCES.split(text)
    if len(sentences) > 1:
        return [piece for group in _pack_strings(sentences, max_tokens) for piece in _fit(group, max_tokens)]
    words = text.split()
    if len(words) > 1:
        per_piece = max(1, len(words) * max_tokens // estimate_tokens(text))
        return [piece for i in range(0, len(words), per_piece)
                for piece in _fit(" ".join(words[i:i + per_piece]), max_tokens)]
    width = max_tokens * 4
    return [text[i:i + width] for i in range(0, len(text), width)]


def _pack_strings(parts: Sequence[str], max_tokens: int) -> list[str]:
    """Join consecutive parts with spaces into groups whose estimate stays within `max_tokens`."""
    groups: list[str] = []
    current: list[str] = []
    words = chars = 0
    for part in parts:
        part_words, part_chars = len(part.split()), len(part) + 1
        if current and estimate_counts(words + part_words, chars + part_chars) > max_tokens:
            groups.append(" ".join(current))
            current, words, chars = [], 0, 0
        current.append(part)
        words += part_words
        chars += part_chars
    if current:
        groups.append(" ".join(current))
    return groups


def pack(sizes: Sequence[int], capacity: int) -> list[range]:
    """Group consecutive items (by their token sizes) into runs whose total stays within `capacity`.

    Order is kept, so neighbouring passages and summaries are merged together. An item larger than
    `capacity` gets a run of its own; callers size items so that never happens.
    """
    runs: list[range] = []
    start = 0
    total = 0
    for index, size in enumerate(sizes):
        if index > start and total + size > capacity:
            runs.append(range(start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        runs.append(range(start, len(sizes)))
    return runs
