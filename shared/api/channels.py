"""Channels and workspace keys in the API (issue 11).

- `GET /api/v1/channels`: the workspace's connections, each `connected`, `needs_reconnect` (with the
  platform's reason) or `revoked`.
- `POST /api/v1/channels/{provider}/connect` (owners): for LinkedIn, X and Meta, `{authorization_url}` to send
  the browser to (a single-use `state`, 10 minutes); for email and WhatsApp, the API key and settings in the
  body, and the connection back.
- `GET /api/v1/channels/{provider}/callback`: where the platform sends the browser back. No bearer token:
  the `state` names the workspace. JSON, or a redirect to `MUSE_CHANNELS_RETURN_URL` when it is set.
- `DELETE /api/v1/channels/{connection_id}` (owners): disconnect (tokens erased).
- `GET /api/v1/workspace/keys`, `PUT`/`DELETE /api/v1/workspace/keys/{service}` (owners): the workspace's own
  Gemini and Tavily keys, used before the project's.

No response, log line or error message carries a token or a key; connects and disconnects are audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import flask
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from shared.api.spec import EMAIL_PATTERN, WORKSPACE_HEADER, errors, json_content
from shared.auth import Principal, choose_workspace, verify_token
from shared.db import audit
from shared.db import channels as db
from shared.db.campaigns import memberships
from shared.db.pool import Conn, Pool, as_service, as_user, create_pool
from shared.db.workspace_data import member_role
from shared.errors import Forbidden, InvalidRequest, MuseError, NotFound, Unprocessable
from shared.http import Route, error_response, json_response, parse_body, read_json
from shared.publishing.connections import (
    API_KEY_PROVIDERS,
    CONNECTION_PROVIDERS,
    ApiKeyConnection,
    Connections,
    ConnectionStatus,
    connection_provider,
)
from shared.publishing.ports import ConnectionProvider
from shared.publishing.providers import OAUTH_MODULES
from shared.security.envelope import Keyring
from shared.security.keys import KEY_SERVICES, KeyService, WorkspaceKeys
from shared.settings import Settings, get_settings

_PREFIX = r"^(?:/api)?/v1"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
PHONE_PATTERN = r"^[1-9][0-9]{7,14}$"
SECRET_PATTERN = r"^[\x21-\x7e]{8,2000}$"
OAUTH_PROVIDERS: tuple[str, ...] = tuple(OAUTH_MODULES)
CALLBACK_QUERY = ("code", "state", "error", "error_description", "error_reason", "error_code", "error_message",
                  "error_uri", "scope")
"""What platforms put on the callback URL (Meta adds `error_reason`/`error_code`/`error_message`)."""

Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]
Phone = Annotated[str, StringConstraints(pattern=PHONE_PATTERN)]
Secret = Annotated[str, StringConstraints(pattern=SECRET_PATTERN)]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[\x21-\x7e]{1,2000}$")]


class ChannelView(BaseModel):
    """A connection as members see it: never a token or a key."""

    id: str
    provider: ConnectionProvider
    status: ConnectionStatus
    reason: str | None = Field(description="Why it needs a reconnect (the platform's words), or how it was revoked.")
    account_id: str = Field(description="Where posts go: organization URN, X user id, Facebook Page id, sender "
                                        "address, WhatsApp phone-number id.")
    account_name: str
    scopes: list[str]
    settings: dict[str, Any]
    expires_at: datetime | None
    connected_at: datetime
    refreshed_at: datetime | None
    updated_at: datetime


class ChannelList(BaseModel):
    """`GET /api/v1/channels`: live connections first."""

    workspace_id: str
    channels: list[ChannelView]


class AuthorizationStart(BaseModel):
    """Where to send the browser to approve an OAuth connection."""

    provider: ConnectionProvider
    authorization_url: str
    expires_in_seconds: int = Field(description="The approval must come back within this long.")


class EmailConnect(BaseModel):
    """`POST /api/v1/channels/email/connect`: the ESP's API key and who the emails go from and to."""

    model_config = ConfigDict(extra="forbid")

    api_key: Secret = Field(description="The ESP's API key (Resend `re_…`); stored encrypted, never shown again.")
    from_address: Email
    from_name: Annotated[str, StringConstraints(pattern=r"^[^\x00\r\n]{0,100}$")] = ""
    reply_to: Email | None = None
    recipients: list[Email] = Field(min_length=1, max_length=1000,
                                    description="Addresses the campaign emails go to (opted-in subscribers).")
    esp: Literal["resend", "ses"] = Field("resend", description="`resend` (`api_key` is the Resend key) or `ses` "
                                          "(`api_key` is the secret access key; `aws_access_key_id` required).")
    aws_access_key_id: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{16,128}$")] | None = None
    region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")] | None = None
    cta_url: HttpsUrl | None = None
    unsubscribe_url: HttpsUrl | None = Field(None, description="Sent as a one-click `List-Unsubscribe` header.")

    @model_validator(mode="after")
    def _ses_needs_its_key_id(self) -> EmailConnect:
        if self.esp == "ses" and self.aws_access_key_id is None:
            raise ValueError("`esp` ses needs `aws_access_key_id` (the access key id of `api_key`)")
        return self


class WhatsAppConnect(BaseModel):
    """`POST /api/v1/channels/whatsapp/connect`: a Cloud API system-user token, the sending number and the approved
    marketing template."""

    model_config = ConfigDict(extra="forbid")

    access_token: Secret = Field(description="System-user or business token; stored encrypted, never shown again.")
    phone_number_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{5,20}$")]
    template: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,512}$")] = Field(
        description="Name of an approved MARKETING template.")
    template_language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")] = "en"
    recipients: list[Phone] = Field(min_length=1, max_length=1000,
                                    description="Opted-in numbers in E.164 without `+` (e.g. 919812345678).")


class WorkspaceKeyUpdate(BaseModel):
    """`PUT /api/v1/workspace/keys/{service}`."""

    model_config = ConfigDict(extra="forbid")

    api_key: Secret = Field(description="The workspace's own key; stored encrypted, never shown again.")


class WorkspaceKeyView(BaseModel):
    """Whether the workspace uses its own key for a service (the project's otherwise)."""

    service: KeyService
    configured: bool
    updated_at: datetime | None


class WorkspaceKeyList(BaseModel):
    """`GET /api/v1/workspace/keys`."""

    workspace_id: str
    keys: list[WorkspaceKeyView]


def channel_view(row: db.ConnectionRow) -> ChannelView:
    """The member's view of a stored connection."""
    return ChannelView.model_validate({**{k: v for k, v in row.items() if k != "status_reason"},
                                       "reason": row["status_reason"]})


def _api_key_connection(provider: ConnectionProvider, body: EmailConnect | WhatsAppConnect) -> ApiKeyConnection:
    if isinstance(body, EmailConnect):
        extra = body.model_dump(include={"aws_access_key_id", "region", "cta_url", "unsubscribe_url"},
                                exclude_none=True)
        return ApiKeyConnection(api_key=body.api_key, account_id=body.from_address, account_name=body.from_name,
                                settings={"esp": body.esp, "from_name": body.from_name, "reply_to": body.reply_to,
                                          "recipients": body.recipients, **extra})
    return ApiKeyConnection(api_key=body.access_token, account_id=body.phone_number_id, account_name="",
                            settings={"template": body.template, "template_language": body.template_language,
                                      "recipients": body.recipients})


@dataclass
class ChannelsApi:
    """Channels and workspace keys, independent of HTTP."""

    pool: Pool
    settings: Settings
    connections: Connections
    keys: WorkspaceKeys

    def _workspace(self, principal: Principal, requested: str | None, *, owner: str | None = None) -> str:
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, requested)
            role = member_role(conn, workspace_id) if owner else None
        if owner and role != "owner":
            raise Forbidden(f"Only an owner of workspace {workspace_id} may {owner}; your role is {role!r}.")
        return workspace_id

    def list(self, principal: Principal, requested: str | None) -> ChannelList:
        """The workspace's connections (read as the member: row-level security and column grants apply)."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, requested)
            rows = db.list_connections(conn, workspace_id)
        return ChannelList(workspace_id=workspace_id, channels=[channel_view(r) for r in rows])

    def connect(self, principal: Principal, requested: str | None, provider: ConnectionProvider,
                body: EmailConnect | WhatsAppConnect | None) -> AuthorizationStart | ChannelView:
        """Start an OAuth connect, or store an API-key connection."""
        workspace_id = self._workspace(principal, requested, owner="connect channels")
        user_id = str(principal.user_id)
        if provider in API_KEY_PROVIDERS:
            expected = EmailConnect if provider == "email" else WhatsAppConnect
            if not isinstance(body, expected):
                raise Unprocessable(f"Connecting {provider} needs a JSON body ({expected.__name__}: the API key and "
                                    "settings).", details={"field": "(body)", "expected": expected.__name__})
            row = self.connections.connect_api_key(workspace_id=workspace_id, user_id=user_id, provider=provider,
                                                   connection=_api_key_connection(provider, body))
            return channel_view(row)
        if body is not None:
            raise Unprocessable(f"{provider} is connected by OAuth: send no body, then open `authorization_url`.",
                                details={"field": "(body)"})
        url = self.connections.start(workspace_id=workspace_id, user_id=user_id, provider=provider)
        return AuthorizationStart(provider=provider, authorization_url=url,
                                  expires_in_seconds=self.settings.oauth_state_seconds)

    def disconnect(self, principal: Principal, requested: str | None, connection_id: str) -> ChannelView:
        """Revoke one of the workspace's connections."""
        workspace_id = self._workspace(principal, requested, owner="disconnect channels")
        return channel_view(self.connections.disconnect(workspace_id=workspace_id, connection_id=connection_id,
                                                        user_id=str(principal.user_id)))

    def list_keys(self, principal: Principal, requested: str | None) -> WorkspaceKeyList:
        """Which services use the workspace's own key."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, requested)
            stored = dict(db.list_workspace_keys(conn, workspace_id))
        return WorkspaceKeyList(workspace_id=workspace_id, keys=[
            WorkspaceKeyView(service=s, configured=s in stored, updated_at=stored.get(s)) for s in KEY_SERVICES])

    def put_key(self, principal: Principal, requested: str | None, service: KeyService,
                body: WorkspaceKeyUpdate) -> WorkspaceKeyView:
        """Store the workspace's own key for `service` (audited as a settings change, without the key)."""
        workspace_id = self._workspace(principal, requested, owner="set the workspace's keys")
        with as_service(self.pool) as conn:
            self.keys.put(conn, workspace_id=workspace_id, service=service, api_key=body.api_key,
                          user_id=str(principal.user_id))
            _audit_key(conn, workspace_id, str(principal.user_id), service, "set")
            stored = dict(db.list_workspace_keys(conn, workspace_id))
        self.keys.forget(workspace_id, service)
        return WorkspaceKeyView(service=service, configured=True, updated_at=stored.get(service))

    def delete_key(self, principal: Principal, requested: str | None, service: KeyService) -> WorkspaceKeyView:
        """Remove the workspace's own key (the project's is used again); 404 when none is set."""
        workspace_id = self._workspace(principal, requested, owner="remove the workspace's keys")
        with as_service(self.pool) as conn:
            if not self.keys.delete(conn, workspace_id=workspace_id, service=service):
                raise NotFound(f"The workspace has no {service} key of its own.", details={"field": "service"})
            _audit_key(conn, workspace_id, str(principal.user_id), service, "removed")
        self.keys.forget(workspace_id, service)
        return WorkspaceKeyView(service=service, configured=False, updated_at=None)


def _audit_key(conn: Conn, workspace_id: str, actor: str, service: str, change: str) -> None:
    audit.record(conn, workspace_id=workspace_id, actor=actor, action="settings.updated",
                 target_type="workspace_settings", target_id=workspace_id,
                 details={"workspace_key": {"service": service, "change": change}})


@lru_cache(maxsize=1)
def service() -> ChannelsApi:
    """This instance's channels API: its own small pool and the deployment's keyring (built on first use)."""
    settings = get_settings()
    pool = create_pool(settings.database_url, max_size=2)
    connections = Connections(pool=pool, settings=settings, keyring=Keyring.from_settings(settings))
    return ChannelsApi(pool=pool, settings=settings, connections=connections,
                       keys=WorkspaceKeys(pool=pool, settings=settings))


def _principal(request: flask.Request) -> Principal:
    return verify_token(request.headers.get("Authorization"), get_settings())


def _provider(raw: str, allowed: tuple[str, ...]) -> ConnectionProvider:
    if raw not in allowed:
        raise InvalidRequest(f"`provider` must be one of {', '.join(allowed)}; got {raw!r}.",
                             details={"field": "provider", "allowed": list(allowed)})
    return connection_provider(raw)


def _one(request: flask.Request, name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"Send `{name}` at most once.", details={"field": name})
    return values[0] if values else None


def get_channels(request: flask.Request) -> flask.Response:
    """`GET /api/v1/channels`."""
    view = service().list(_principal(request), request.headers.get("X-Workspace-Id"))
    return json_response(view.model_dump(mode="json"))


def _connect_body(kind: ConnectionProvider, data: Any) -> EmailConnect | WhatsAppConnect | None:
    """The API-key body of `kind`; a body for the other provider, or any body for an OAuth one, is a 422."""
    if kind not in API_KEY_PROVIDERS:
        if data not in (None, {}):
            raise Unprocessable(f"{kind} is connected by OAuth: send no body, then open `authorization_url`.",
                                details={"field": "(body)"})
        return None
    model: type[EmailConnect | WhatsAppConnect] = EmailConnect if kind == "email" else WhatsAppConnect
    if data is None:
        raise Unprocessable(f"Connecting {kind} needs a JSON body ({model.__name__}: the API key and settings).",
                            details={"field": "(body)", "expected": model.__name__})
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        other = WhatsAppConnect if model is EmailConnect else EmailConnect
        try:
            other.model_validate(data, strict=True)
        except ValidationError:
            problems = [{"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
                        for e in exc.errors(include_url=False)]
            summary = "; ".join(f"`{p['field']}`: {p['problem']}" for p in problems)
            raise InvalidRequest(f"Invalid {model.__name__}: {summary}", details={"fields": problems}) from exc
        raise Unprocessable(f"This is a {other.__name__} body; connecting {kind} takes a {model.__name__}.",
                            details={"field": "(body)", "expected": model.__name__}) from exc


def post_connect(request: flask.Request, provider: str) -> flask.Response:
    """`POST /api/v1/channels/{provider}/connect`."""
    principal = _principal(request)
    kind = _provider(provider, CONNECTION_PROVIDERS)
    data = read_json(request) if request.content_length or request.is_json else None
    body = _connect_body(kind, data)
    result = service().connect(principal, request.headers.get("X-Workspace-Id"), kind, body)
    return json_response(result.model_dump(mode="json"), 201 if isinstance(result, ChannelView) else 200)


def get_callback(request: flask.Request, provider: str) -> flask.Response:
    """`GET /api/v1/channels/{provider}/callback` (the browser, back from the platform)."""
    settings = service().settings
    try:
        kind = _provider(provider, OAUTH_PROVIDERS)
        state = _one(request, "state")
        if not state:
            raise InvalidRequest("The callback has no `state`; open the connection from "
                                 f"POST /api/v1/channels/{provider}/connect.", details={"field": "state"})
        if len(state) > 200:
            raise InvalidRequest("`state` is longer than any state Muse issues.", details={"field": "state"})
        error = _one(request, "error")
        row = service().connections.callback(provider=kind, state=state, code=_one(request, "code"),
                                             error=None if error is None else
                                             f"{error}: {_one(request, 'error_description') or ''}".strip(": "))
    except MuseError as exc:
        if settings.channels_return_url is None:
            return error_response(exc)
        return _back(settings.channels_return_url, {"provider": provider, "status": "error", "error": exc.code,
                                                    "message": exc.message[:300]})
    view = channel_view(row)
    if settings.channels_return_url is None:
        return json_response(view.model_dump(mode="json"))
    return _back(settings.channels_return_url, {"provider": view.provider, "status": "connected",
                                                "connection_id": view.id})


def _back(url: str, query: dict[str, str]) -> flask.Response:
    joiner = "&" if "?" in url else "?"
    return flask.Response(status=302, headers={"Location": f"{url}{joiner}{urlencode(query)}"})


def delete_channel(request: flask.Request, connection_id: str) -> flask.Response:
    """`DELETE /api/v1/channels/{connection_id}`."""
    principal = _principal(request)
    if not re.fullmatch(_UUID, connection_id):
        raise InvalidRequest(f"{connection_id!r} is not a connection id; connection ids are UUIDs.",
                             details={"field": "connection_id"})
    view = service().disconnect(principal, request.headers.get("X-Workspace-Id"), connection_id.lower())
    return json_response(view.model_dump(mode="json"))


def _service_name(raw: str) -> KeyService:
    if raw not in KEY_SERVICES:
        raise InvalidRequest(f"`service` must be one of {', '.join(KEY_SERVICES)}; got {raw!r}.",
                             details={"field": "service", "allowed": list(KEY_SERVICES)})
    return raw


def get_keys(request: flask.Request) -> flask.Response:
    """`GET /api/v1/workspace/keys`."""
    view = service().list_keys(_principal(request), request.headers.get("X-Workspace-Id"))
    return json_response(view.model_dump(mode="json"))


def put_key(request: flask.Request, key_service: str) -> flask.Response:
    """`PUT /api/v1/workspace/keys/{service}`."""
    principal = _principal(request)
    name = _service_name(key_service)
    body = parse_body(request, WorkspaceKeyUpdate)
    view = service().put_key(principal, request.headers.get("X-Workspace-Id"), name, body)
    return json_response(view.model_dump(mode="json"))


def delete_key(request: flask.Request, key_service: str) -> flask.Response:
    """`DELETE /api/v1/workspace/keys/{service}`."""
    principal = _principal(request)
    view = service().delete_key(principal, request.headers.get("X-Workspace-Id"), _service_name(key_service))
    return json_response(view.model_dump(mode="json"))


ROUTES: list[Route] = [
    ("GET", re.compile(_PREFIX + r"/channels/?$"), get_channels),
    ("POST", re.compile(_PREFIX + r"/channels/(?P<provider>[^/]+)/connect/?$"), post_connect),
    ("GET", re.compile(_PREFIX + r"/channels/(?P<provider>[^/]+)/callback/?$"), get_callback),
    ("DELETE", re.compile(_PREFIX + r"/channels/(?P<connection_id>[^/]+)/?$"), delete_channel),
    ("GET", re.compile(_PREFIX + r"/workspace/keys/?$"), get_keys),
    ("PUT", re.compile(_PREFIX + r"/workspace/keys/(?P<key_service>[^/]+)/?$"), put_key),
    ("DELETE", re.compile(_PREFIX + r"/workspace/keys/(?P<key_service>[^/]+)/?$"), delete_key),
]

_FORBIDDEN = {"403": {"description": "Only a workspace owner may do this", "content": errors(400)["400"]["content"]}}
_PROVIDER = {"name": "provider", "in": "path", "required": True,
             "schema": {"type": "string", "enum": list(CONNECTION_PROVIDERS)}}
_SERVICE = {"name": "service", "in": "path", "required": True, "schema": {"type": "string", "enum": list(KEY_SERVICES)}}
_QUERY = [{"name": name, "in": "query", "required": name == "state",
           "schema": {"type": "string", "pattern": r"^[^\x00]*$",
                      **({"minLength": 1, "maxLength": 200} if name == "state" else {})},
           "description": {"code": "The authorization code (exchanged at once).",
                           "state": "The state Muse issued with `authorization_url` (single use).",
                           "error": "Set by the platform when the user declined."}.get(name, "Set by the platform.")}
          for name in CALLBACK_QUERY]
_REDIRECT = {"302": {"description": "When MUSE_CHANNELS_RETURN_URL is set: back to it with `provider`, `status` "
                                    "(`connected` or `error`) and `connection_id` or `error`/`message`",
                     "headers": {"Location": {"schema": {"type": "string"}}}}}
PATHS: dict[str, Any] = {
    "/api/v1/channels": {"get": {
        "summary": "The workspace's channel connections (never a token)",
        "parameters": [WORKSPACE_HEADER],
        "responses": {"200": {"description": "Connections, live first", "content": json_content(ChannelList)},
                      **errors(400, 401, 404)},
    }},
    "/api/v1/channels/{provider}/connect": {"post": {
        "summary": "Connect a channel: an authorization URL (LinkedIn, X, Meta) or an API key (email, WhatsApp)",
        "description": "Owners only. LinkedIn, X and Meta take no body and answer `authorization_url` (its `state` "
                       "is single use, valid `expires_in_seconds`); email takes an `EmailConnect` body and WhatsApp "
                       "a `WhatsAppConnect` one and answer the connection (201). A body that does not fit the "
                       "provider is a 422, as is a provider this deployment has no app for. Connecting again "
                       "replaces the connection's credentials (same id).",
        "parameters": [_PROVIDER, WORKSPACE_HEADER],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/EmailConnect"}, {"$ref": "#/components/schemas/WhatsAppConnect"}]}}}},
        "responses": {"200": {"description": "Where to send the browser", "content": json_content(AuthorizationStart)},
                      "201": {"description": "The API-key connection", "content": json_content(ChannelView)},
                      **errors(400, 401, 404, 422), **_FORBIDDEN},
    }},
    "/api/v1/channels/{provider}/callback": {"get": {
        "summary": "OAuth callback: the platform sends the browser here with `code` and `state`",
        "description": "No bearer token: the single-use `state` names the workspace. A used, expired or foreign "
                       "`state`, or a declined approval, is a 400; a `state` never issued a 404.",
        "security": [],
        "parameters": [{**_PROVIDER, "schema": {"type": "string", "enum": list(OAUTH_PROVIDERS)}}, *_QUERY],
        "responses": {"200": {"description": "The connection", "content": json_content(ChannelView)}, **_REDIRECT,
                      **errors(400, 404, 429, 503)},
    }},
    "/api/v1/channels/{connection_id}": {"delete": {
        "summary": "Disconnect a channel (its tokens are erased; owners only; audited)",
        "parameters": [{"name": "connection_id", "in": "path", "required": True,
                        "schema": {"type": "string", "format": "uuid"}}, WORKSPACE_HEADER],
        "responses": {"200": {"description": "The revoked connection", "content": json_content(ChannelView)},
                      **errors(400, 401, 404), **_FORBIDDEN},
    }},
    "/api/v1/workspace/keys": {"get": {
        "summary": "Which services use the workspace's own key (Gemini, Tavily); never the key",
        "parameters": [WORKSPACE_HEADER],
        "responses": {"200": {"description": "Per service", "content": json_content(WorkspaceKeyList)},
                      **errors(400, 401, 404)},
    }},
    "/api/v1/workspace/keys/{service}": {
        "put": {"summary": "Use the workspace's own key for a service, before the project's (owners only; audited)",
                "parameters": [_SERVICE, WORKSPACE_HEADER],
                "requestBody": {"required": True, "content": json_content(WorkspaceKeyUpdate)},
                "responses": {"200": {"description": "Stored (encrypted)", "content": json_content(WorkspaceKeyView)},
                              **errors(400, 401, 404), **_FORBIDDEN}},
        "delete": {"summary": "Go back to the project's key for a service (owners only; audited)",
                   "parameters": [_SERVICE, WORKSPACE_HEADER],
                   "responses": {"200": {"description": "Removed", "content": json_content(WorkspaceKeyView)},
                                 **errors(400, 401, 404), **_FORBIDDEN}},
    },
}
MODELS: tuple[type, ...] = (ChannelView, ChannelList, AuthorizationStart, EmailConnect, WhatsAppConnect,
                            WorkspaceKeyUpdate, WorkspaceKeyView, WorkspaceKeyList)
