"""`/api/v1/workspace/privacy` (GET, PUT): the workspace's personal-data policy (India's DPDP Act).

The policy says what happens to Aadhaar numbers, PANs, mobile numbers, emails, card numbers and UPI ids
found in what Muse stores for the workspace (ingested knowledge, memory facts): `redact` (the default),
`mask` (keep a hint) or `allow`, for every kind or per kind. A change applies to what is stored after it;
text already stored keeps the masking it was stored with. Only members read or change it (row-level
security); every change is an audit-log entry (`privacy_policy.updated`), and a PUT that changes nothing
writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import flask
from pydantic import BaseModel, ConfigDict, Field

from shared.api.spec import errors, json_content
from shared.auth import Principal, choose_workspace, verify_token
from shared.db import audit
from shared.db import privacy as db
from shared.db.campaigns import memberships
from shared.db.pool import Conn, Pool, as_user, create_pool
from shared.http import Route, json_response, parse_body
from shared.safety.pii import KINDS, PiiKind, PiiMode, PiiPolicy
from shared.settings import get_settings

_PREFIX = r"^(?:/api)?/v1"


class PrivacyUpdate(BaseModel):
    """`PUT /api/v1/workspace/privacy`: the whole policy."""

    model_config = ConfigDict(extra="forbid")

    mode: PiiMode = Field(description="What happens to personal data of every kind without an override: "
                                      "`redact` (replace with `[KIND]`), `mask` (keep the last 4 digits or an "
                                      "email's first letter and domain) or `allow` (store as is).")
    overrides: dict[PiiKind, PiiMode] = Field(default_factory=dict,
                                              description="Per-kind modes, e.g. {\"email\": \"allow\"}.")


class PrivacyDocument(BaseModel):
    """`GET`/`PUT /api/v1/workspace/privacy`: the policy in force and its version (0: the default, never changed)."""

    workspace_id: str
    mode: PiiMode
    overrides: dict[PiiKind, PiiMode]
    effective: dict[PiiKind, PiiMode]
    """The mode each kind gets."""
    version: int
    updated_by: UUID | None
    updated_at: datetime | None


@dataclass
class PrivacyApi:
    """The policy's operations, independent of HTTP."""

    pool: Pool

    def get(self, principal: Principal, workspace: str | None) -> PrivacyDocument:
        """The caller's workspace policy (the default, redact everything, until a member changes it)."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = _workspace(conn, principal, workspace)
            return _document(workspace_id, db.get_privacy(conn, workspace_id))

    def put(self, principal: Principal, workspace: str | None, body: PrivacyUpdate) -> PrivacyDocument:
        """Replace the policy and record who changed it from what to what in the audit log, in one transaction.

        The same policy again changes nothing (no new version, no audit record).
        """
        policy = PiiPolicy(mode=body.mode, overrides=body.overrides)
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = _workspace(conn, principal, workspace)
            before = db.get_privacy(conn, workspace_id, lock=True)
            if before["version"] > 0 and before["policy"] == policy:
                return _document(workspace_id, before)
            stored = db.save_privacy(conn, workspace_id, policy, updated_by=principal.user_id)
            audit.record(conn, workspace_id=workspace_id, actor=str(principal.user_id),
                         action="privacy_policy.updated", target_type="privacy_policy", target_id=workspace_id,
                         details={"version": stored["version"], "before": before["policy"].model_dump(),
                                  "after": policy.model_dump()},
                         key=f"privacy_policy:{stored['version']}")
        return _document(workspace_id, stored)


def _document(workspace_id: str, stored: db.StoredPrivacy) -> PrivacyDocument:
    policy = stored["policy"]
    return PrivacyDocument(workspace_id=workspace_id, mode=policy.mode, overrides=dict(policy.overrides),
                           effective={kind: policy.mode_for(kind) for kind in KINDS}, version=stored["version"],
                           updated_by=stored["updated_by"], updated_at=stored["updated_at"])


def _workspace(conn: Conn, principal: Principal, requested: str | None) -> str:
    return choose_workspace(memberships(conn), principal, requested)


@lru_cache(maxsize=1)
def service() -> PrivacyApi:
    """This instance's privacy API with its own small pool (opened lazily)."""
    settings = get_settings()
    return PrivacyApi(pool=create_pool(settings.database_url, max_size=2))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def get_privacy(request: flask.Request) -> flask.Response:
    doc = service().get(_principal(request), request.headers.get("X-Workspace-Id"))
    return json_response(doc.model_dump(mode="json"), headers={"ETag": f'"{doc.version}"'})


def put_privacy(request: flask.Request) -> flask.Response:
    principal = _principal(request)
    body = parse_body(request, PrivacyUpdate)
    doc = service().put(principal, request.headers.get("X-Workspace-Id"), body)
    return json_response(doc.model_dump(mode="json"), headers={"ETag": f'"{doc.version}"'})


ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/workspace/privacy/?$"), get_privacy),
    ("PUT", re.compile(_PREFIX + r"/workspace/privacy/?$"), put_privacy),
]

PATHS: dict[str, Any] = {
    "/api/v1/workspace/privacy": {
        "get": {"summary": "The workspace's personal-data policy (default: redact every kind)",
                "responses": {"200": {"description": "The policy in force", "content": json_content(PrivacyDocument)},
                              **errors(400, 401, 404)}},
        "put": {"summary": "Replace the personal-data policy (applies to what is stored from now on)",
                "requestBody": {"required": True, "content": json_content(PrivacyUpdate)},
                "responses": {"200": {"description": "The stored policy", "content": json_content(PrivacyDocument)},
                              **errors(400, 401, 404)}},
    },
}
MODELS: tuple[type, ...] = (PrivacyUpdate, PrivacyDocument)
