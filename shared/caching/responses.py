"""The model-response cache: deterministic calls answered again from Upstash Redis.

`CachedModel` wraps the deployment's model port. A call whose schema is deterministic
(`shared.models.deterministic`: classification, summaries, the QA judge per guideline, all asked at
temperature 0) made inside a workspace's scope (`shared.caching.scope`) is keyed by the workspace,
the tier's first model, a hash of system prompt and prompt, and a hash of the schema:

    ws:<workspace>:resp:<model>:<sha256(system, prompt)>:<sha256(schema)[:16]>

The prompt carries everything the answer depends on (the brand kit, the findings, the guideline), so
an edit of any of them is a new key; a change of model or schema is too. A hit costs no tokens: it
comes back with zero usage (the spend was recorded when it was first asked). Every other call, and
every call outside a workspace scope, goes to the wrapped model. The cache is best effort: an outage
is a miss, and the call goes to the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.caching.best_effort import ChatCache
from shared.caching.scope import current_workspace
from shared.integrations.cache import workspace_key
from shared.models.deterministic import is_deterministic
from shared.ports import Generated, ModelTier, RoutableModel, Route, Usage

T = TypeVar("T", bound=BaseModel)
log = logging.getLogger("muse.caching.responses")


def response_key(workspace_id: str, model: str, system: str, prompt: str, schema: type[BaseModel]) -> str:
    """Where the answer of one deterministic call is cached."""
    prompt_hash = hashlib.sha256(f"{system}\x00{prompt}".encode()).hexdigest()
    schema_hash = hashlib.sha256(json.dumps(schema.model_json_schema(), sort_keys=True).encode()).hexdigest()[:16]
    return workspace_key(workspace_id, f"resp:{model}:{prompt_hash}:{schema_hash}")


@dataclass(frozen=True)
class CachedModel:
    """A `RoutableModel` whose deterministic answers are cached per workspace (see the module docstring)."""

    inner: RoutableModel
    cache: ChatCache
    ttl_seconds: int = 7 * 86400

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def for_workspace(self, workspace_settings: Mapping[str, Any] | None) -> CachedModel:
        """The wrapped model's workspace view, still cached."""
        return replace(self, inner=self.inner.for_workspace(workspace_settings))

    def _model(self, tier: ModelTier) -> str:
        cascade = getattr(self.inner, "cascade", None)
        return cascade(tier)[0] if callable(cascade) else tier

    def generate(self, *, tier: ModelTier, system: str, prompt: str, schema: type[T]) -> Generated[T]:
        """The cached answer of a deterministic call, else the wrapped model's (then cached)."""
        workspace_id = current_workspace()
        if self.ttl_seconds == 0 or workspace_id is None or not is_deterministic(schema):
            return self.inner.generate(tier=tier, system=system, prompt=prompt, schema=schema)
        model = self._model(tier)
        key = response_key(workspace_id, model, system, prompt, schema)
        cached = self.cache.get("response", key)
        if isinstance(cached, dict) and "value" in cached:
            try:
                value = schema.model_validate(cached["value"])
            except ValidationError:
                log.warning("cached answer under %s no longer fits %s; asking the model", key, schema.__name__)
            else:
                return Generated(value=value, usage=Usage(model=str(cached.get("model") or model)),
                                 route=Route(tier=tier, model=str(cached.get("model") or model)))
        out = self.inner.generate(tier=tier, system=system, prompt=prompt, schema=schema)
        answered_by = out.route.model if out.route else out.usage.model
        self.cache.put("response", key, {"value": out.value.model_dump(mode="json"), "model": answered_by},
                       ttl_seconds=self.ttl_seconds)
        return out
