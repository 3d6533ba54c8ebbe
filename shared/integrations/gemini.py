"""Gemini through the official `google-genai` SDK, at a configurable base URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel, ValidationError

from shared.errors import ConfigurationError, UpstreamUnavailable
from shared.ports import Generated, ModelTier, Usage
from shared.settings import Settings

T = TypeVar("T", bound=BaseModel)

_TRANSIENT = {408, 429, 500, 502, 503, 504}


def gemini_client(settings: Settings) -> genai.Client:
    """A client for Google's endpoint, or the local emulator when `GEMINI_BASE_URL` is set."""
    options = types.HttpOptions(api_version=settings.gemini_api_version, timeout=settings.gemini_timeout_ms)
    if settings.gemini_base_url:
        options.base_url = settings.gemini_base_url
    return genai.Client(api_key=settings.gemini_api_key.get_secret_value(), http_options=options)


def usage_of(response: types.GenerateContentResponse, model: str) -> Usage:
    """Token usage (prompt, cached, output, thinking) as Gemini reported it."""
    meta = response.usage_metadata
    if meta is None:
        return Usage(model=model)
    return Usage(
        model=response.model_version or model,
        prompt_tokens=meta.prompt_token_count or 0,
        cached_tokens=meta.cached_content_token_count or 0,
        output_tokens=meta.candidates_token_count or 0,
        thinking_tokens=meta.thoughts_token_count or 0,
    )


@dataclass
class GeminiStructuredModel:
    """`StructuredModel` that asks Gemini for JSON matching a pydantic schema."""

    client: genai.Client
    models: dict[str, str]
    """Tier → model id."""

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        model = self.models[tier]
        config = types.GenerateContentConfig(
            system_instruction=system,
            response_mime_type="application/json",
            response_json_schema=schema.model_json_schema(),
            temperature=0.4,
        )
        try:
            response = self.client.models.generate_content(model=model, contents=prompt, config=config)
        except genai_errors.APIError as exc:
            if exc.code in _TRANSIENT:
                raise UpstreamUnavailable(f"Gemini model {model!r} answered {exc.code}: {exc.message}") from exc
            if exc.code in (401, 403):
                raise ConfigurationError(f"Gemini rejected the API key ({exc.code}); check GEMINI_API_KEY.") from exc
            raise
        except OSError as exc:
            raise UpstreamUnavailable(f"Gemini is unreachable for model {model!r}: {exc}") from exc
        try:
            value = schema.model_validate_json(response.text or "")
        except ValidationError as exc:
            raise UpstreamUnavailable(
                f"Gemini model {model!r} returned JSON that does not match {schema.__name__}: {exc}"
            ) from exc
        return Generated(value=value, usage=usage_of(response, model))


def structured_model(settings: Settings) -> GeminiStructuredModel:
    """The model router of this deployment (fast = Flash, strong = Pro)."""
    return GeminiStructuredModel(
        client=gemini_client(settings),
        models={"fast": settings.model_fast, "strong": settings.model_strong},
    )


@dataclass
class GeminiEmbedder:
    """Text embeddings through `embed_content`."""

    client: genai.Client
    model: str
    dimensions: int

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        """One vector per text, of the configured dimension."""
        if not texts:
            return []
        config = types.EmbedContentConfig(output_dimensionality=self.dimensions, task_type=task)
        try:
            result = self.client.models.embed_content(model=self.model, contents=texts, config=config)
        except genai_errors.APIError as exc:
            raise UpstreamUnavailable(f"Gemini embeddings failed ({exc.code}): {exc.message}") from exc
        except OSError as exc:
            raise UpstreamUnavailable(f"Gemini embeddings are unreachable: {exc}") from exc
        return [list(e.values or []) for e in (result.embeddings or [])]
