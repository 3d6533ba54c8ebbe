"""Which tier a task uses, and which models (in fallback order) serve each tier.

The deployment's cascades come from settings; a workspace may put its own models in front of them
through its settings JSON, `{"models": {"fast": [...], "strong": [...]}}`. The deployment's models
stay behind a workspace's choice, so an override never makes a tier less available.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import InvalidRequest
from shared.ports import ModelTier

TaskKind = Literal["summarization", "classification", "lint_assist", "content_execution", "planning", "strategy"]
"""What a model call is for; the tier follows from it."""

TASK_TIERS: dict[TaskKind, ModelTier] = {
    "summarization": "fast",
    "classification": "fast",
    "lint_assist": "fast",
    "content_execution": "fast",
    "planning": "strong",
    "strategy": "strong",
}

MAX_CASCADE = 4
_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,62}$")


def tier_for(task: TaskKind) -> ModelTier:
    """The tier of `task`: Flash-class for summarization, classification, lint-assist and copy; Pro for the rest."""
    return TASK_TIERS[task]


def model_id(value: str) -> str:
    """A bare Gemini model id (`models/` prefix removed), or ValueError naming the value and the fix."""
    bare = value.strip().removeprefix("models/")
    if not _MODEL_ID.match(bare):
        raise ValueError(f"{value!r} is not a Gemini model id; use a name such as 'gemini-2.5-flash'")
    return bare


def cascade(models: Sequence[str]) -> tuple[str, ...]:
    """Distinct model ids in order, first occurrence wins."""
    return tuple(dict.fromkeys(model_id(m) for m in models))


class WorkspaceModels(BaseModel):
    """A workspace's preferred models per tier, first choice first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fast: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=MAX_CASCADE)
    strong: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=MAX_CASCADE)

    @field_validator("fast", "strong")
    @classmethod
    def _model_ids(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return cascade(value) if value is not None else None

    def for_tier(self, tier: ModelTier) -> tuple[str, ...]:
        """The workspace's models of `tier` (empty when it keeps the deployment's)."""
        return (self.fast if tier == "fast" else self.strong) or ()


def workspace_models(workspace_settings: Mapping[str, Any] | None) -> WorkspaceModels:
    """The `models` part of a workspace's settings JSON; InvalidRequest names what to fix.

    Use it both when a workspace saves its settings (to reject a bad value early) and when a run
    builds the workspace's router.
    """
    raw = (workspace_settings or {}).get("models")
    if raw is None:
        return WorkspaceModels()
    if not isinstance(raw, Mapping):
        raise InvalidRequest(
            f"workspace setting 'models' must be an object such as "
            f'{{"fast": ["gemini-2.5-flash"], "strong": ["gemini-2.5-pro"]}}, got {raw!r}'
        )
    try:
        return WorkspaceModels.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(f"models.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(f"Invalid workspace model settings: {problems}.") from exc


def merge_cascades(
    defaults: Mapping[ModelTier, Sequence[str]], overrides: WorkspaceModels
) -> dict[ModelTier, tuple[str, ...]]:
    """Per tier: the workspace's models first, then the deployment's, without repeats."""
    return {tier: cascade([*overrides.for_tier(tier), *models]) for tier, models in defaults.items()}
