"""The model actions: `generateContent`, `streamGenerateContent`, `embedContent`, `batchEmbedContents`
and `countTokens`, each admitted through the script (rules, injected errors, the request log) first."""

from __future__ import annotations

import json
from typing import Any

import flask

from infra.local.emulators.gemini.embeddings import embed_text, output_dimensions
from infra.local.emulators.gemini.errors import error_response
from infra.local.emulators.gemini.function_calling import function_call_parts, function_calling_mode
from infra.local.emulators.gemini.generation import (
    answer_text,
    response_payload,
    stream_chunks,
    stream_response,
    thought_parts,
    usage_metadata,
)
from infra.local.emulators.gemini.scripting import State, admit, bare_model
from infra.local.emulators.gemini.text import content_texts, digest_of, estimate_tokens, request_text


def _generate(state: State, model: str, action: str, body: dict[str, Any]) -> flask.Response:
    """`generateContent` and `streamGenerateContent`: scripted rule, else the default generator."""
    model = bare_model(model)
    text = request_text(body)
    rule, early = admit(state, model, action, text, body)
    if early is not None:
        return early
    response_id = digest_of(model, json.dumps(body, sort_keys=True))[:24]
    scripted_calls = (rule.response or {}).get("function_calls") if rule else None
    lead = thought_parts(rule.response if rule else None)
    chunks = stream_chunks(rule.response if rule else None)
    if scripted_calls is not None and function_calling_mode(body) != "NONE":
        parts, problem = function_call_parts(scripted_calls, body)
        if problem:
            return error_response(400, problem)
        said = str((rule.response or {}).get("text") or "") if rule else ""
        usage = usage_metadata(state, body, text, said + json.dumps(scripted_calls))
        if action == "generateContent":
            spoken = [{"text": said}] if said else []
            payload = response_payload(model, response_id, "", "STOP", usage, parts=[*lead, *spoken, *parts])
            return flask.jsonify(payload)
        return stream_response(model, response_id, said, "STOP", usage, chunks=chunks, lead=lead, tail=parts)
    scripted = rule.response if rule and scripted_calls is None else None
    answer, finish_reason = answer_text(model, body, scripted)
    usage = usage_metadata(state, body, text, answer)
    if action == "generateContent":
        return flask.jsonify(response_payload(model, response_id, answer, finish_reason, usage,
                                              parts=[*lead, {"text": answer}] if lead else None))
    return stream_response(model, response_id, answer, finish_reason, usage, chunks=chunks, lead=lead)


def _embed_batch(state: State, model: str, action: str, body: dict[str, Any]) -> flask.Response:
    """`batchEmbedContents`: one vector per request entry."""
    requests = body.get("requests") or []
    texts = ["\n".join(content_texts([entry.get("content") or {}])) for entry in requests]
    _, early = admit(state, bare_model(model), action, "\n".join(texts), body)
    if early is not None:
        return early
    embeddings = [
        {"values": embed_text(text, output_dimensions(entry))} for text, entry in zip(texts, requests, strict=True)
    ]
    return flask.jsonify({"embeddings": embeddings})


def _embed_single(state: State, model: str, action: str, body: dict[str, Any]) -> flask.Response:
    """`embedContent`: one vector for the (possibly multi-part) content."""
    text = "\n".join(content_texts([body.get("content") or {}]))
    _, early = admit(state, bare_model(model), action, text, body)
    if early is not None:
        return early
    return flask.jsonify({"embedding": {"values": embed_text(text, output_dimensions(body))}})


def _count_tokens(state: State, model: str, action: str, body: dict[str, Any]) -> flask.Response:
    """`countTokens` with the same estimate the usage metadata uses."""
    inner = body.get("generateContentRequest") or body
    text = request_text(inner)
    _, early = admit(state, bare_model(model), action, text, body)
    if early is not None:
        return early
    total = estimate_tokens(text)
    return flask.jsonify({"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})


MODEL_ACTIONS = {
    "generateContent": _generate,
    "streamGenerateContent": _generate,
    "batchEmbedContents": _embed_batch,
    "embedContent": _embed_single,
    "countTokens": _count_tokens,
}
