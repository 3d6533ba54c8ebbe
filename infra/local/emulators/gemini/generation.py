"""Deterministic answers: the candidate text (scripted, the injection classifier's stand-in verdict,
schema-shaped JSON or an emulated sentence), usage metadata, and the response payload, whole or as
server-sent events."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import flask

from infra.local.emulators.gemini.indic import requested_language, text_in
from infra.local.emulators.gemini.injection import is_classifier_request
from infra.local.emulators.gemini.injection import verdict as injection_verdict
from infra.local.emulators.gemini.schema import SchemaFaker
from infra.local.emulators.gemini.scripting import State
from infra.local.emulators.gemini.text import estimate_tokens, keywords, seed_int, user_text


def answer_text(model: str, body: dict[str, Any], scripted: dict[str, Any] | None) -> tuple[str, str]:
    """The candidate text and its finish reason, from a scripted response or the default generator."""
    if scripted is not None:
        if "json" in scripted:
            return json.dumps(scripted["json"], ensure_ascii=False), "STOP"
        return str(scripted.get("text", "")), "STOP"
    if is_classifier_request(body):
        return json.dumps(injection_verdict(body), ensure_ascii=False), "STOP"
    config = body.get("generationConfig") or {}
    mime = config.get("responseMimeType") or config.get("response_mime_type") or "text/plain"
    prompt = user_text(body)
    schema = _response_schema(config)
    language = requested_language(body)
    if mime == "application/json":
        if schema is None:
            value: Any = {"emulated": True, "model": model, "summary": _emulated_sentence(model, prompt)}
        else:
            value = SchemaFaker(schema, seed=prompt, language=language).generate()
        return json.dumps(value, ensure_ascii=False), "STOP"
    if mime == "text/x.enum" and schema is not None:
        return str(SchemaFaker(schema, seed=prompt).generate()), "STOP"
    if language is not None:
        sentences = text_in(language, f"{model}|{prompt}").removeprefix("[emulated] ")
        return _limit_tokens(f"[emulated {model}] {sentences}", config)
    return _limit_tokens(f"[emulated {model}] {_emulated_sentence(model, prompt)}", config)


def _emulated_sentence(model: str, prompt: str) -> str:
    """A short deterministic reply that echoes the gist of the prompt."""
    gist = " ".join(keywords(prompt, 8)) or "your request"
    openers = (
        "Here is a concise take on",
        "A short, practical response about",
        "Key points to consider regarding",
        "A brief draft addressing",
    )
    opener = openers[seed_int(model, prompt) % len(openers)]
    return f"{opener}: {gist}."


def _limit_tokens(text: str, config: dict[str, Any]) -> tuple[str, str]:
    limit = config.get("maxOutputTokens") or config.get("max_output_tokens")
    if not limit or estimate_tokens(text) <= int(limit):
        return text, "STOP"
    words = text.split()
    return " ".join(words[: max(1, int(int(limit) / 1.3))]), "MAX_TOKENS"


def _response_schema(config: dict[str, Any]) -> dict[str, Any] | None:
    for key in ("responseJsonSchema", "response_json_schema", "responseSchema", "response_schema"):
        if isinstance(config.get(key), dict):
            return config[key]
    return None


def usage_metadata(state: State, body: dict[str, Any], text: str, answer: str) -> dict[str, Any]:
    """Usage metadata; prompt tokens include the referenced explicit cache, as on the real API."""
    prompt_tokens = estimate_tokens(text)
    cached = 0
    cache_name = body.get("cachedContent") or body.get("cached_content")
    if cache_name and (record := state.caches.get(cache_name)):
        cached = record.token_count
    candidates = estimate_tokens(answer)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens + cached,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt_tokens + cached + candidates,
        "thoughtsTokenCount": 0,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens + cached}],
    }
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    return usage


def response_payload(
    model: str,
    response_id: str,
    text: str,
    finish_reason: str | None,
    usage: dict[str, Any] | None,
    parts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts or [{"text": text}], "role": "model"}, "index": 0}
    if finish_reason:
        candidate["finishReason"] = finish_reason
    payload: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": response_id}
    if usage is not None:
        payload["usageMetadata"] = usage
    return payload


def stream_response(
    model: str, response_id: str, text: str, finish_reason: str, usage: dict[str, Any],
    *, chunks: int = 3, lead: list[dict[str, Any]] | None = None, tail: list[dict[str, Any]] | None = None,
) -> flask.Response:
    """Server-sent events, one full response per chunk; the last carries finish reason and usage.

    `text` is split into `chunks` pieces at word boundaries. `lead` parts (e.g. a thought) come in a chunk
    of their own first, `tail` parts (function calls) in the last chunk, after the text, as Gemini sends them.
    """
    pieces: list[list[dict[str, Any]]] = [[part] for part in lead or []]
    if text or not tail:
        pieces += [[{"text": piece}] for piece in _split_for_stream(text, chunks)]
    if tail:
        pieces.append(tail)

    def events() -> Iterator[str]:
        for position, parts in enumerate(pieces):
            last = position == len(pieces) - 1
            payload = response_payload(
                model, response_id, "", finish_reason if last else None, usage if last else None, parts=parts
            )
            yield f"data: {json.dumps(payload, ensure_ascii=False)}\r\n\r\n"

    return flask.Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


def thought_parts(scripted: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A scripted `thoughts` string as a thought part (what `include_thoughts` returns on the real API)."""
    thoughts = (scripted or {}).get("thoughts")
    return [{"text": str(thoughts), "thought": True}] if thoughts else []


def stream_chunks(scripted: dict[str, Any] | None) -> int:
    """How many pieces scripted text streams in (`chunks`, default 3)."""
    try:
        return max(1, int((scripted or {}).get("chunks") or 3))
    except (TypeError, ValueError):
        return 3


def _split_for_stream(text: str, chunks: int = 3) -> list[str]:
    words = re.split(r"(?<=\s)", text)
    size = max(1, math.ceil(len(words) / chunks))
    pieces = ["".join(words[start : start + size]) for start in range(0, len(words), size)]
    return pieces or [""]
