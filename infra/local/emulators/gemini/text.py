"""The text of requests and deterministic derivations of it: token estimates, keywords and seeds.

Everything here is a pure function of its input, which is what keeps the emulator's answers the
same for the same request.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

_STOPWORDS = frozenset(
    "a an and are as at be but by can do for from give has have how i in into is it its me my of on or "
    "our please should so that the their them then there these this to us was we what when which who "
    "why will with write you your about all any some than also just more most very".split()
)
_TOKEN_SPLIT = re.compile(r"[\s.,;:!?\"'()\[\]{}<>/\\|@#$%^&*+=~`\u2013\u2014-]+")


def request_text(body: dict[str, Any]) -> str:
    """All text of a generate/count request: system instruction first, then every content part."""
    system = body.get("systemInstruction") or body.get("system_instruction")
    parts = content_texts([system]) if isinstance(system, dict) else []
    return "\n".join([*parts, *content_texts(body.get("contents"))])


def user_text(body: dict[str, Any]) -> str:
    """Text of the last user turn, the most useful seed for a deterministic answer."""
    contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    users = [c for c in contents if c.get("role", "user") == "user"] or contents
    return "\n".join(content_texts(users[-1:])) if users else ""


def content_texts(contents: Any) -> list[str]:
    texts: list[str] = []
    for content in contents or []:
        if isinstance(content, dict):
            texts.extend(str(part["text"]) for part in content.get("parts") or [] if "text" in part)
    return texts


def estimate_tokens(text: str) -> int:
    """Roughly 1.3 tokens per whitespace-separated word."""
    return math.ceil(len(text.split()) * 1.3)


def keywords(text: str, limit: int) -> list[str]:
    """The first `limit` distinct non-stopword words of `text`, case preserved."""
    seen: dict[str, str] = {}
    for word in _TOKEN_SPLIT.split(text):
        lowered = word.lower()
        if len(word) > 2 and lowered not in _STOPWORDS and lowered not in seen:
            seen[lowered] = word
            if len(seen) >= limit:
                break
    return list(seen.values())


def word_tokens(text: str) -> list[str]:
    return [token for token in _TOKEN_SPLIT.split(text.lower()) if token]


def digest_of(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def seed_int(*parts: str) -> int:
    return int(digest_of(*parts)[:12], 16)
