"""`GET/PUT /api/v1/billing/profile`: who the workspace's GST invoices are made out to.

A profile has a legal name, an address, an email, a country (ISO 3166 alpha-2, default `IN`) and, in
India, a state (its GST code or its name) and optionally a GSTIN. With a GSTIN the workspace is a
registered buyer (B2B: the GSTIN's state is the place of supply, and it must be the state given); without
one it is a consumer (B2C: the state given); outside India its invoices are exports of services.
Invalid input is a 400 naming the field and the rule (`details.field`, `details.rule`). Members read the
profile; owners change it (audited as `billing_profile.updated`, with the names of the fields changed).
Invoices already issued keep the parties as printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import flask
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.api.spec import EMAIL_PATTERN, NOT_BLANK_PATTERN, WORKSPACE_HEADER, errors, json_content
from shared.auth import Principal, choose_workspace, verify_token
from shared.billing.gstin import InvalidGstin, normalize_gstin, state_code, state_name
from shared.db import audit
from shared.db import billing as bdb
from shared.db.billing import ProfileRow
from shared.db.campaigns import memberships
from shared.db.pool import Pool, as_runtime, as_user, create_pool
from shared.db.workspace_data import member_role
from shared.errors import Forbidden, InvalidRequest, NotFound
from shared.http import Route, json_response, parse_body
from shared.settings import get_settings

_PREFIX = r"^(?:/api)?/v1"
TaxTreatment = Literal["b2b", "b2c", "export"]


class BillingProfileUpdate(BaseModel):
    """`PUT /api/v1/billing/profile`: the whole profile."""

    model_config = ConfigDict(extra="forbid")

    legal_name: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK_PATTERN,
                            description="The name invoices are made out to (as registered, for a GSTIN holder).")
    address: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK_PATTERN)
    country: str = Field("IN", pattern=r"^[A-Z]{2}$",
                         description="ISO 3166-1 alpha-2; any other than `IN` makes invoices exports of services.")
    state: str | None = Field(None, min_length=1, max_length=60, pattern=NOT_BLANK_PATTERN,
                              description="In India: the GST state code (`29`) or name (`Karnataka`). Required "
                                          "without a GSTIN (B2C: the place of supply); with one it must be the "
                                          "GSTIN's state (or omitted). Not sent for other countries.")
    gstin: str | None = Field(None, min_length=1, max_length=24,
                              description="15 characters: state code, PAN, entity number, `Z`, check character "
                                          "(checked). Absent or null: an unregistered (B2C) buyer.")
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN, description="Where invoices are sent.")

    @model_validator(mode="after")
    def _follows_the_rules(self) -> BillingProfileUpdate:
        checked(self)
        return self


class BillingProfileView(BaseModel):
    """The workspace's billing profile and how its invoices are taxed."""

    workspace_id: str
    legal_name: str
    address: str
    country: str
    state_code: str | None
    state: str | None
    gstin: str | None
    email: str
    tax_treatment: TaxTreatment = Field(description="`b2b`: a GSTIN holder; `b2c`: unregistered in India; "
                                                    "`export`: outside India (zero-rated)")
    updated_at: datetime


class ProfileRule(ValueError):
    """A profile that breaks a GST rule JSON Schema cannot state: `field` and `rule` name it."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


def _bad(field: str, rule: str, message: str) -> ProfileRule:
    return ProfileRule(field, rule, message)


def checked(body: BillingProfileUpdate) -> dict[str, Any]:
    """The profile's stored values; `ProfileRule` names the field and the rule a profile breaks."""
    gstin = None
    if body.gstin is not None:
        if body.country != "IN":
            raise _bad("gstin", "india_only", f"A GSTIN is an Indian registration; a customer in {body.country} has "
                                              "none. Remove `gstin` or set `country` to IN.")
        try:
            gstin = normalize_gstin(body.gstin)
        except InvalidGstin as exc:
            raise _bad("gstin", exc.rule, str(exc)) from exc
    code = None
    if body.state is not None:
        if body.country != "IN":
            raise _bad("state", "india_only", f"`state` is a GST state of India; leave it out for {body.country}.")
        try:
            code = state_code(body.state)
        except ValueError as exc:
            raise _bad("state", "state", str(exc)) from exc
    if gstin is not None:
        if code is not None and gstin[:2] != code:
            raise _bad("state", "gstin_state", f"GSTIN {gstin} is registered in {state_name(gstin[:2])} ({gstin[:2]}), "
                                               f"not {state_name(code)} ({code}); the state must be the GSTIN's.")
        if code is None and not state_code_in_use(gstin[:2]):
            raise _bad("gstin", "state_code", f"GSTIN {gstin} carries state code {gstin[:2]} "
                                              f"({state_name(gstin[:2])}), which is no current place of supply.")
        code = gstin[:2]
    if body.country == "IN" and code is None:
        raise _bad("state", "required", "Send `state` (GST state code or name, e.g. 29 or Karnataka): it is the place "
                                        "of supply of an unregistered buyer in India.")
    return {"legal_name": body.legal_name.strip(), "address": body.address.strip(), "country": body.country,
            "state_code": code, "gstin": gstin, "email": body.email.strip()}


def state_code_in_use(code: str) -> bool:
    """Whether `code` is a current GST state (not only found in older GSTINs)."""
    try:
        return state_code(code) == code
    except ValueError:
        return False


def view(row: ProfileRow) -> BillingProfileView:
    """The API's form of a stored profile."""
    treatment: TaxTreatment = "export" if row["country"] != "IN" else "b2b" if row["gstin"] else "b2c"
    return BillingProfileView(workspace_id=row["workspace_id"], legal_name=row["legal_name"], address=row["address"],
                              country=row["country"], state_code=row["state_code"],
                              state=state_name(row["state_code"]) if row["state_code"] else None, gstin=row["gstin"],
                              email=row["email"], tax_treatment=treatment, updated_at=row["updated_at"])


@dataclass
class BillingApi:
    """Billing profiles, independent of HTTP."""

    pool: Pool

    def get(self, principal: Principal, workspace: str | None) -> BillingProfileView:
        """The caller's workspace's profile; 404 if it has none yet."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            row = bdb.profile(conn, workspace_id)
        if row is None:
            raise NotFound(f"Workspace {workspace_id} has no billing profile yet; PUT /api/v1/billing/profile "
                           "sets one (until then invoices are made out to the workspace's name, B2C).")
        return view(row)

    def put(self, principal: Principal, workspace: str | None, body: BillingProfileUpdate) -> BillingProfileView:
        """Replace the profile (owners only), audited with the names of the fields that changed."""
        values = checked(body)
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, workspace)
            role = member_role(conn, workspace_id)
            if role != "owner":
                raise Forbidden(f"Only an owner of workspace {workspace_id} may change its billing profile; "
                                f"your role is {role!r}.")
            as_runtime(conn)
            before = bdb.profile(conn, workspace_id)
            row = bdb.put_profile(conn, workspace_id=workspace_id, actor=str(principal.user_id), **values)
            old: dict[str, Any] = dict(before) if before else {}
            changed = sorted(k for k in values if before is None or old[k] != values[k])
            if changed:
                audit.record(conn, workspace_id=workspace_id, actor=str(principal.user_id),
                             action="billing_profile.updated", target_type="billing_profile", target_id=workspace_id,
                             details={"fields": changed, "created": before is None,
                                      "tax_treatment": view(row).tax_treatment})
        return view(row)


@lru_cache(maxsize=1)
def service() -> BillingApi:
    """This instance's billing API: its own small pool, opened lazily."""
    return BillingApi(pool=create_pool(get_settings().database_url, max_size=2))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def get_profile(request: flask.Request) -> flask.Response:
    """`GET /api/v1/billing/profile`."""
    found = service().get(_principal(request), request.headers.get("X-Workspace-Id"))
    return json_response(found.model_dump(mode="json"))


def _body(request: flask.Request) -> BillingProfileUpdate:
    """The validated body; a broken GST rule is a 400 whose details name the field and the rule."""
    try:
        return parse_body(request, BillingProfileUpdate)
    except InvalidRequest as exc:
        cause = exc.__cause__
        if isinstance(cause, ValidationError):
            for error in cause.errors(include_url=False):
                rule = error.get("ctx", {}).get("error")
                if isinstance(rule, ProfileRule):
                    raise InvalidRequest(str(rule), details={"field": rule.field, "rule": rule.rule}) from exc
        raise


def put_profile(request: flask.Request) -> flask.Response:
    """`PUT /api/v1/billing/profile`."""
    principal = _principal(request)
    body = _body(request)
    stored = service().put(principal, request.headers.get("X-Workspace-Id"), body)
    return json_response(stored.model_dump(mode="json"))


ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/billing/profile/?$"), get_profile),
    ("PUT", re.compile(_PREFIX + r"/billing/profile/?$"), put_profile),
]

_FORBIDDEN = {"403": {"description": "Only a workspace owner may do this", "content": errors(400)["400"]["content"]}}
PATHS: dict[str, Any] = {
    "/api/v1/billing/profile": {
        "get": {"summary": "The workspace's billing profile (who its GST invoices are made out to)",
                "parameters": [WORKSPACE_HEADER],
                "responses": {"200": {"description": "The profile", "content": json_content(BillingProfileView)},
                              **errors(400, 401, 404)}},
        "put": {"summary": "Set the billing profile: legal name, address, state, GSTIN (checked), email, country "
                           "(owners only; audited)",
                "description": "A 400 names the field and the rule (`details.field`, `details.rule`: `format`, "
                               "`state_code`, `checksum`, `gstin_state`, `state`, `required`, `india_only`).",
                "parameters": [WORKSPACE_HEADER],
                "requestBody": {"required": True, "content": json_content(BillingProfileUpdate)},
                "responses": {"200": {"description": "The stored profile",
                                      "content": json_content(BillingProfileView)},
                              **errors(400, 401, 404), **_FORBIDDEN}},
    },
}
MODELS: tuple[type, ...] = (BillingProfileUpdate, BillingProfileView)
