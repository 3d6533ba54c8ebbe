"""Image generation: `generateContent` with `responseModalities` including `IMAGE` (the Gemini image models,
google-genai's `GenerateContentConfig(response_modalities=["IMAGE"])`) answers one `inlineData` part holding a
real PNG, deterministic from the prompt: a 256×256 gradient between two colours taken from the prompt's
SHA-256, with a band whose position depends on it, written with zlib and struct (no imaging library)."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from typing import Any

import flask

from infra.local.emulators.gemini.generation import response_payload, usage_metadata
from infra.local.emulators.gemini.scripting import State, admit, bare_model
from infra.local.emulators.gemini.text import digest_of, request_text

SIZE = 256
IMAGE_TOKENS = 1290
"""Output tokens Gemini bills for one generated image (up to 1024×1024)."""


def wants_image(body: dict[str, Any]) -> bool:
    """Whether the request asks for an image (`responseModalities` / `response_modalities` lists `IMAGE`)."""
    config = body.get("generationConfig") or body.get("generation_config") or {}
    modalities = config.get("responseModalities") or config.get("response_modalities") or []
    return any(str(modality).upper() == "IMAGE" for modality in modalities)


def png_for(prompt: str, size: int = SIZE) -> bytes:
    """A valid PNG (8-bit RGB), the same for the same prompt."""
    seed = hashlib.sha256(prompt.encode()).digest()
    start, end, band = seed[0:3], seed[3:6], seed[6:9]
    band_row = seed[9] % size
    rows = bytearray()
    for y in range(size):
        rows.append(0)
        for x in range(size):
            if abs(y - band_row) < size // 16:
                rows += band
                continue
            t = (x + y) / (2 * (size - 1))
            rows += bytes(round(a + (b - a) * t) for a, b in zip(start, end, strict=True))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 6)) \
        + chunk(b"IEND", b"")


def image_response(state: State, model: str, action: str, body: dict[str, Any]) -> flask.Response:
    """One candidate with the PNG as `inlineData` (and a short text part, as Gemini's image models add)."""
    model = bare_model(model)
    text = request_text(body)
    _, early = admit(state, model, action, text, body)
    if early is not None:
        return early
    image = base64.b64encode(png_for(text)).decode()
    parts = [{"text": "Here is the image."}, {"inlineData": {"mimeType": "image/png", "data": image}}]
    usage = usage_metadata(state, body, text, "")
    usage["candidatesTokenCount"] = IMAGE_TOKENS
    usage["totalTokenCount"] = usage["promptTokenCount"] + IMAGE_TOKENS
    usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": IMAGE_TOKENS}]
    response_id = digest_of(model, text)[:24]
    return flask.jsonify(response_payload(model, response_id, "", "STOP", usage, parts=parts))
