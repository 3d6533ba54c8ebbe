"""The route modules of the API function beyond campaigns: each exposes `ROUTES`, `PATHS` and `MODELS`.

`ROUTES` are (method, path pattern, view) triples the dispatcher tries in order; `PATHS` are the
module's OpenAPI path items and `MODELS` the pydantic models they reference. Add a module here and
both the router and the OpenAPI document pick it up.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from shared.api import (
    assets,
    audit,
    billing,
    brandkit,
    cancel,
    channels,
    conversations,
    costs,
    invoices,
    knowledge,
    plan,
    privacy,
    publications,
    schedules,
    subscriptions,
    workspace,
)
from shared.http import Route

MODULES: tuple[ModuleType, ...] = (knowledge, brandkit, privacy, audit, workspace, conversations, plan, cancel,
                                   costs, schedules, publications, subscriptions, billing, invoices,
                                   channels, assets)


def routes() -> list[Route]:
    """Every module's routes, in module order."""
    found: list[Route] = []
    for module in MODULES:
        found += module.ROUTES
    return found


def paths() -> dict[str, Any]:
    """Every module's OpenAPI path items."""
    return {path: item for module in MODULES for path, item in module.PATHS.items()}
