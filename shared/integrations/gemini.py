"""Gemini through the official `google-genai` SDK, at a configurable base URL.

`GeminiBackend` calls one model and sorts its failures into the outcomes the model router acts on;
`structured_model(settings)` is the deployment's `StructuredModel`: a `ModelRouter` over it. The SDK
is imported, and the client created, on the first call (see `shared.lazy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import httpx2
from pydantic import BaseModel, ValidationError

from shared.errors import ConfigurationError, PermanentStepError, UpstreamUnavailable
from shared.integrations.gemini_context import ContextCaches
from shared.integrations.keyed import client_for_key
from shared.lazy import lazy_module
from shared.models.breaker import CircuitBreakers
from shared.models.context import current_shared_context
from shared.models.deterministic import is_deterministic
from shared.models.router import ModelCallFailed, ModelRouter
from shared.ports import AttemptOutcome, Usage
from shared.settings import Settings
from shared.tracing import llm_usage, span

if TYPE_CHECKING:
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types
else:
    genai = lazy_module("google.genai")
    genai_errors = lazy_module("google.genai.errors")
    types = lazy_module("google.genai.types")

T = TypeVar("T", bound=BaseModel)

_TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException, TimeoutError)
_NETWORK = (httpx.TransportError, httpx2.TransportError, OSError)


def gemini_client(settings: Settings, api_key: str | None = None) -> genai.Client:
    """A client for Google's endpoint, or the local emulator when `GEMINI_BASE_URL` is set; with the project's
    key (`GEMINI_API_KEY`) unless `api_key` (a workspace's own) is given."""
    options = types.HttpOptions(api_version=settings.gemini_api_version, timeout=settings.gemini_timeout_ms)
    if settings.gemini_base_url:
        options.base_url = settings.gemini_base_url
    return genai.Client(api_key=api_key or settings.gemini_api_key.get_secret_value(), http_options=options)


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


def _outcome(code: int) -> AttemptOutcome | None:
    if code in (408, 504):
        return "timeout"
    if code == 429:
        return "rate_limited"
    if code == 404:
        return "not_found"
    if code >= 500:
        return "server_error"
    return None


@dataclass
class GeminiBackend:
    """`ModelBackend` over one `genai.Client`: one model per call, SDK retries off, failures classified."""

    connect: Callable[..., genai.Client]
    """Creates the client (`partial(gemini_client, settings)`); called once, on the first call, and once per
    workspace key (`api_key=`)."""
    context: ContextCaches | None = None
    """Explicit context caches for declared shared contexts (`shared.models.context`); None sends all inline."""
    own_key: Callable[[], str | None] | None = None
    """The key of the workspace the running call is for, if it set one (`shared.security.keys`); it is used
    before the project's. None: always the project's."""
    _keyed: dict[str, genai.Client] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def project_client(self) -> genai.Client:
        """The SDK client with the project's key, created on first use."""
        return self.connect()

    @property
    def client(self) -> genai.Client:
        """The client of this call: the workspace's own key's when it has one, else the project's."""
        key = self.own_key() if self.own_key is not None else None
        if key is None:
            return self.project_client
        return client_for_key(self._keyed, key, lambda own: self.connect(api_key=own))

    def rejected_key(self, code: int) -> PermanentStepError | ConfigurationError:
        """The error of a 401/403: the workspace's own key is the workspace's to fix, the project's the deployment's."""
        if self.own_key is not None and self.own_key() is not None:
            return PermanentStepError(f"Gemini rejected this workspace's own API key ({code}): replace it with PUT "
                                      "/api/v1/workspace/keys/gemini, or DELETE it to use the project's key.")
        return ConfigurationError(f"Gemini rejected the API key ({code}); check GEMINI_API_KEY.")

    def generate_content(self, *, model: str, contents: Any, config: types.GenerateContentConfig,
                         timeout_seconds: float) -> types.GenerateContentResponse:
        """`models.generate_content` with a per-call timeout; fallback-worthy failures raise `ModelCallFailed`.

        A rejected API key raises `ConfigurationError`, any other 4xx `PermanentStepError`: another
        model would not fix either.
        """
        config = config.model_copy(update={"http_options": types.HttpOptions(timeout=int(timeout_seconds * 1000))})
        with span("gemini", "llm", {"model": model, "system": config.system_instruction, "contents": contents},
                  metadata={"ls_provider": "google_genai", "ls_model_name": model}) as run:
            response = self._call(model, contents, config, timeout_seconds)
            run.record(lambda: ({"text": response.text if response.function_calls is None else None,
                                 "function_calls": [c.model_dump(exclude_none=True)
                                                    for c in response.function_calls or []]},
                                llm_usage(usage_of(response, model))))
            return response

    def _call(self, model: str, contents: Any, config: types.GenerateContentConfig,
              timeout_seconds: float) -> types.GenerateContentResponse:
        try:
            return self.client.models.generate_content(model=model, contents=contents, config=config)
        except genai_errors.APIError as exc:
            outcome = _outcome(exc.code)
            if outcome is not None:
                raise ModelCallFailed(f"Gemini model {model!r} answered {exc.code}: {exc.message}",
                                      model=model, outcome=outcome) from exc
            if exc.code in (401, 403):
                raise self.rejected_key(exc.code) from exc
            raise PermanentStepError(
                f"Gemini model {model!r} rejected the request ({exc.code}): {exc.message}") from exc
        except _TIMEOUTS as exc:
            raise ModelCallFailed(f"Gemini model {model!r} did not answer within {timeout_seconds:g}s",
                                  model=model, outcome="timeout") from exc
        except _NETWORK as exc:
            raise ModelCallFailed(f"Gemini is unreachable for model {model!r}: {exc}",
                                  model=model, outcome="unreachable") from exc

    def generate_once(self, *, model: str, system: str, prompt: str, schema: type[T],
                      timeout_seconds: float) -> tuple[T, Usage]:
        """JSON matching `schema` from `model`; an answer that does not parse is an `invalid_output` failure."""
        config = types.GenerateContentConfig(
            system_instruction=system,
            response_mime_type="application/json",
            response_json_schema=schema.model_json_schema(),
            temperature=0.0 if is_deterministic(schema) else 0.4,
        )
        response = self._generate_cached(model=model, system=system, prompt=prompt, config=config,
                                         timeout_seconds=timeout_seconds)
        usage = usage_of(response, model)
        try:
            return schema.model_validate_json(response.text or ""), usage
        except ValidationError as exc:
            raise ModelCallFailed(
                f"Gemini model {model!r} returned JSON that does not match {schema.__name__}: "
                f"{exc.error_count()} error(s), first: {exc.errors()[0]['msg']}",
                model=model, outcome="invalid_output", usage=usage,
            ) from exc


    def _generate_cached(self, *, model: str, system: str, prompt: str, config: types.GenerateContentConfig,
                         timeout_seconds: float) -> types.GenerateContentResponse:
        """The call through an explicit context cache of its declared shared context, when there is one
        (`shared.integrations.gemini_context`); inline otherwise, and again inline when the cache vanished."""
        shared = current_shared_context()
        split = self.context.split(self.client, model=model, system=system, prompt=prompt, shared=shared) \
            if self.context is not None else None
        if split is not None and self.context is not None and shared is not None:
            cached = config.model_copy(update={"system_instruction": None, "cached_content": split.cache_name})
            try:
                return self.generate_content(model=model, contents=split.rest, config=cached,
                                             timeout_seconds=timeout_seconds)
            except (ModelCallFailed, PermanentStepError, ConfigurationError) as exc:
                if isinstance(exc, ModelCallFailed) and exc.outcome != "not_found":
                    raise
                self.context.forget(model, system, shared)
        return self.generate_content(model=model, contents=prompt, config=config, timeout_seconds=timeout_seconds)


def model_router(settings: Settings, *, breakers: CircuitBreakers | None = None,
                 own_key: Callable[[], str | None] | None = None) -> ModelRouter:
    """The deployment's router: fast = `MUSE_MODEL_FAST` then its fallbacks, strong likewise; `own_key` gives
    the current workspace's Gemini key, used before the project's (`GeminiBackend.own_key`)."""
    return ModelRouter(
        backend=GeminiBackend(partial(gemini_client, settings), context=ContextCaches(
            ttl_seconds=settings.context_cache_seconds, min_tokens=settings.context_cache_min_tokens)
            if settings.context_cache_seconds else None, own_key=own_key),
        cascades={"fast": (settings.model_fast, *settings.model_fallbacks_fast),
                  "strong": (settings.model_strong, *settings.model_fallbacks_strong)},
        breakers=breakers or CircuitBreakers(failure_threshold=settings.model_breaker_failures,
                                             cooldown_seconds=settings.model_breaker_cooldown_seconds),
        timeouts={"fast": settings.model_timeout_fast_seconds, "strong": settings.model_timeout_strong_seconds},
    )


def structured_model(settings: Settings, *, own_key: Callable[[], str | None] | None = None) -> ModelRouter:
    """The `StructuredModel` of this deployment (fast = Flash, strong = Pro, each with its fallbacks)."""
    return model_router(settings, own_key=own_key)


@dataclass
class GeminiEmbedder:
    """Text embeddings through `embed_content`."""

    connect: Callable[[], genai.Client]
    """Creates the client (`partial(gemini_client, settings)`); called once, on the first call."""
    model: str
    dimensions: int

    @cached_property
    def client(self) -> genai.Client:
        """The SDK client, created on first use."""
        return self.connect()

    def embed(self, texts: list[str], *, task: str = "RETRIEVAL_DOCUMENT") -> list[list[float]]:
        """One vector per text, of the configured dimension."""
        if not texts:
            return []
        config = types.EmbedContentConfig(output_dimensionality=self.dimensions, task_type=task)
        try:
            with span("gemini.embed", "embedding", {"model": self.model, "task": task, "texts": len(texts)},
                      metadata={"ls_provider": "google_genai", "ls_model_name": self.model}) as run:
                contents: list[types.PartUnion] = [*texts]
                result = self.client.models.embed_content(model=self.model, contents=contents, config=config)
                run.record(lambda: ({"vectors": len(result.embeddings or []), "dimensions": self.dimensions}, None))
        except genai_errors.APIError as exc:
            raise UpstreamUnavailable(f"Gemini embeddings failed ({exc.code}): {exc.message}") from exc
        except _NETWORK as exc:
            raise UpstreamUnavailable(f"Gemini embeddings are unreachable: {exc}") from exc
        return [list(e.values or []) for e in (result.embeddings or [])]
