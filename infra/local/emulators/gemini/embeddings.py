"""Deterministic embeddings: texts that share words get vectors with a higher cosine similarity."""

from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any

from infra.local.emulators.gemini.text import word_tokens

DEFAULT_EMBEDDING_DIMENSIONS = 768


def embed_text(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A feature-hashed bag of words and bigrams, L2-normalised: shared words raise cosine similarity."""
    vector = [0.0] * dimensions
    words = word_tokens(text) or ["<empty>"]
    features = [(word, 1.0) for word in words]
    features += [(f"{first} {second}", 0.5) for first, second in itertools.pairwise(words)]
    for feature, weight in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        number = int.from_bytes(digest, "big")
        sign = 1.0 if number & 1 else -1.0
        vector[(number >> 1) % dimensions] += sign * weight
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def output_dimensions(entry: dict[str, Any]) -> int:
    value = entry.get("outputDimensionality") or entry.get("output_dimensionality")
    return int(value) if value else DEFAULT_EMBEDDING_DIMENSIONS
