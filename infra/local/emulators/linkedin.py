"""LinkedIn emulator: OAuth 2.0 (3-legged, confidential client), organization lookup, images and the Posts API.

Wire shapes follow the versioned Rest.li API (reference `publishing-apis.md` §2):
- `GET /oauth/v2/authorization` approves when followed: it redirects to `redirect_uri` with `code` and
  `state` (`outcome=deny`: `error=user_cancelled_authorize`); `POST /oauth/v2/accessToken` (form with
  `client_id`/`client_secret`) exchanges a code (10 minutes, single use) or a refresh token (which keeps its
  value and its 365-day clock). Access tokens live 60 days.
- Every `/rest/*` call needs `Authorization: Bearer`, an active `LinkedIn-Version` (426 otherwise) and,
  for writes, `X-Restli-Protocol-Version: 2.0.0`.
- `GET /rest/organizationAcls?q=roleAssignee` (the member's administered pages), `GET /rest/organizations/{id}`.
- `POST /rest/images?action=initializeUpload` → `{value: {uploadUrl, image}}`; `PUT` the bytes to `uploadUrl`;
  `GET /rest/images/{urn}` is `WAITING_UPLOAD` until then, `AVAILABLE` after.
- `POST /rest/posts` answers 201 with an empty body and the post URN in `x-restli-id`; the same commentary
  from the same author within a day is refused with 422 `DUPLICATE_POST` naming the existing URN.
  `GET /rest/posts/{urn}` and the author finder `GET /rest/posts?q=author&author={urn}` (newest first).
- Errors: `{status, serviceErrorCode?, code?, message}`.

State lives in the stack's Postgres, schema `linkedin_emulator`. Control: `GET /__emu/posts`,
`POST /__emu/faults` (see `infra.local.emulators._social`).
"""

from __future__ import annotations

import time
from typing import Any

import flask

from infra.local.emulators._social import (
    EmulatorError,
    SocialStore,
    Token,
    bearer_token,
    error_response,
    register_emulator_routes,
    with_query,
)
from infra.local.emulators.config import EmulatorConfig

SCHEMA = "linkedin_emulator"
_SCHEMA_LOCK = 0x05_7A_50_0C
CODE_TTL_SECONDS = 600
ACCESS_TTL_SECONDS = 60 * 86400
REFRESH_TTL_SECONDS = 365 * 86400
ACTIVE_VERSIONS = frozenset(f"{year}{month:02d}" for year in (2025, 2026) for month in range(1, 13)
                            if "202512" <= f"{year}{month:02d}" <= "202612")
"""Versions the emulator serves (LinkedIn keeps a version for about a year)."""
MAX_COMMENTARY = 3000
DUPLICATE_WINDOW_SECONDS = 86400
MEMBER = "urn:li:person:MuseLocal01"
ORGANIZATION = {"id": 109876543, "localizedName": "Muse Local Pvt Ltd", "vanityName": "muse-local"}
ORGANIZATION_URN = f"urn:li:organization:{ORGANIZATION['id']}"
CREATE_ROUTE = "POST /rest/posts"
FIRST_SHARE_ID = 7300000000000000000


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the LinkedIn emulator; its state lives in `config.database_url` and outlives the app."""
    app = flask.Flask(__name__)
    store = SocialStore(config.database_url, schema=SCHEMA, lock=_SCHEMA_LOCK,
                        missing=lambda: EmulatorError(500, _error(500, "The LinkedIn emulator has no database_url")))
    app.extensions["linkedin_emulator"] = store
    register_emulator_routes(app, store, routes=(CREATE_ROUTE,))
    app.register_error_handler(EmulatorError, error_response)

    @app.get("/oauth/v2/authorization")
    def authorize() -> Any:
        return _authorize(config, store)

    @app.post("/oauth/v2/accessToken")
    def access_token() -> Any:
        return _access_token(config, store)

    @app.get("/rest/organizationAcls")
    def organization_acls() -> Any:
        token = _require(store)
        if flask.request.args.get("q") != "roleAssignee":
            raise EmulatorError(400, _error(400, "Unsupported finder; use q=roleAssignee"))
        return {"elements": [{"organization": ORGANIZATION_URN, "role": "ADMINISTRATOR", "state": "APPROVED",
                              "roleAssignee": token.account_id}],
                "paging": {"start": 0, "count": 10, "links": [], "total": 1}}

    @app.get("/rest/organizations/<int:organization_id>")
    def organization(organization_id: int) -> Any:
        _require(store)
        if organization_id != ORGANIZATION["id"]:
            raise EmulatorError(404, _error(404, f"Organization {organization_id} not found"))
        return ORGANIZATION

    @app.post("/rest/images")
    def initialize_upload() -> Any:
        return _initialize_upload(store, _require(store, write=True))

    @app.put("/upload/images/<image_id>")
    def upload(image_id: str) -> Any:
        _require(store)
        urn = f"urn:li:image:{image_id}"
        image = store.media(urn)
        if image is None or not flask.request.get_data():
            raise EmulatorError(400, _error(400, "Unknown upload URL or empty body"))
        store.add_media(urn, image["owner"], image | {"status": "AVAILABLE", "size": len(flask.request.get_data())})
        return "", 201

    @app.get("/rest/images/<path:urn>")
    def image(urn: str) -> Any:
        _require(store)
        found = store.media(urn)
        if found is None:
            raise EmulatorError(404, _error(404, f"Image {urn} not found"))
        return {"id": urn, "owner": found["owner"], "status": found["status"]}

    @app.post("/rest/posts")
    def create_post() -> Any:
        return _create_post(store, _require(store, write=True))

    @app.get("/rest/posts/<path:urn>")
    def get_post(urn: str) -> Any:
        _require(store)
        post = store.post(urn)
        if post is None:
            raise EmulatorError(404, _error(404, f"Post {urn} not found", code="NOT_FOUND"))
        return post

    @app.get("/rest/posts")
    def find_posts() -> Any:
        _require(store)
        args = flask.request.args
        if args.get("q") != "author" or not args.get("author"):
            raise EmulatorError(400, _error(400, "Unsupported finder; use q=author&author={urn}"))
        if not (args.get("count", "10").isdigit() and args.get("start", "0").isdigit()):
            raise EmulatorError(400, _error(400, "count and start must be non-negative integers"))
        count = min(max(int(args["count"] if "count" in args else 10), 1), 100)
        start = int(args.get("start", "0"))
        posts = store.posts(args["author"], newest_first=True)
        return {"elements": posts[start:start + count],
                "paging": {"start": start, "count": count, "links": [], "total": len(posts)}}

    return app


def _error(status: int, message: str, *, code: str | None = None,
           service_error_code: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "message": message}
    if code is not None:
        body["code"] = code
    if service_error_code is not None:
        body["serviceErrorCode"] = service_error_code
    return body


_UNAUTHORIZED = {
    "missing": (65604, "EMPTY_ACCESS_TOKEN", "Empty oauth2 access token"),
    "unknown": (65600, "INVALID_ACCESS_TOKEN", "Invalid access token"),
    "expired": (65601, "EXPIRED_ACCESS_TOKEN", "The token used in the request has expired"),
    "revoked": (65602, "REVOKED_ACCESS_TOKEN", "The token used in the request has been revoked by the user"),
}


def _require(store: SocialStore, *, write: bool = False) -> Token:
    """The caller's token, after the headers every versioned call needs."""
    headers = flask.request.headers
    token, reason = bearer_token(store)
    if token is None:
        service_code, code, message = _UNAUTHORIZED[reason]
        raise EmulatorError(401, _error(401, message, code=code, service_error_code=service_code))
    version = headers.get("LinkedIn-Version", "")
    if version not in ACTIVE_VERSIONS:
        raise EmulatorError(426, _error(426, f"Requested version {version or '(none)'} is not active",
                                        code="NONEXISTENT_VERSION"))
    if write and headers.get("X-Restli-Protocol-Version") != "2.0.0":
        raise EmulatorError(400, _error(400, "X-Restli-Protocol-Version: 2.0.0 is required"))
    return token


def _oauth_error(status: int, error: str, description: str) -> EmulatorError:
    return EmulatorError(status, {"error": error, "error_description": description})


def _authorize(config: EmulatorConfig, store: SocialStore) -> Any:
    args = flask.request.args
    redirect_uri = args.get("redirect_uri", "")
    if args.get("client_id") != config.linkedin_client_id or not redirect_uri.startswith(("http://", "https://")):
        raise _oauth_error(400, "invalid_request", "Unknown client_id or missing redirect_uri")
    state = args.get("state", "")
    if args.get("outcome") == "deny":
        return flask.redirect(with_query(redirect_uri, error="user_cancelled_authorize",
                                         error_description="The user cancelled the authorization", state=state))
    if args.get("response_type") != "code" or not state:
        raise _oauth_error(400, "invalid_request", "response_type=code and state are required")
    code = store.issue_code(client_id=config.linkedin_client_id, redirect_uri=redirect_uri,
                            scope=args.get("scope", ""), account_id=MEMBER, code_challenge=None,
                            challenge_method=None)
    return flask.redirect(with_query(redirect_uri, code=code, state=state))


def _access_token(config: EmulatorConfig, store: SocialStore) -> Any:
    form = flask.request.form
    if form.get("client_id") != config.linkedin_client_id or form.get("client_secret") != config.linkedin_client_secret:
        raise _oauth_error(401, "invalid_client", "Client authentication failed")
    grant = form.get("grant_type")
    if grant == "authorization_code":
        row = store.take_code(form.get("code", ""))
        if row is None or time.time() - row["issued_at"] > CODE_TTL_SECONDS:
            raise _oauth_error(400, "invalid_request", "Unable to retrieve access token: appid/redirect uri/code "
                                                       "verifier does not match authorization code. Or "
                                                       "authorization code expired.")
        if row["redirect_uri"] != form.get("redirect_uri"):
            raise _oauth_error(400, "invalid_redirect_uri", "Unable to retrieve access token: redirect uri does "
                                                            "not match the authorization code")
        refresh = store.issue_token(kind="refresh", account_id=row["account_id"], client_id=row["client_id"],
                                    scope=row["scope"], ttl_seconds=REFRESH_TTL_SECONDS)
        account_id, scope = row["account_id"], row["scope"]
    elif grant == "refresh_token":
        found = store.token(form.get("refresh_token", ""), "refresh")
        if found is None or found.revoked or found.expired:
            raise _oauth_error(400, "invalid_request", "The provided authorization grant or refresh token is "
                                                       "invalid, expired or revoked.")
        refresh, account_id, scope = found, found.account_id, found.scope
    else:
        raise _oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
    access = store.issue_token(kind="access", account_id=account_id, client_id=config.linkedin_client_id,
                               scope=scope, ttl_seconds=ACCESS_TTL_SECONDS)
    assert refresh.expires_at is not None
    return {"access_token": access.token, "expires_in": ACCESS_TTL_SECONDS, "refresh_token": refresh.token,
            "refresh_token_expires_in": int(refresh.expires_at - time.time()), "scope": scope}


def _initialize_upload(store: SocialStore, token: Token) -> Any:
    if flask.request.args.get("action") != "initializeUpload":
        raise EmulatorError(400, _error(400, "Unsupported action; use action=initializeUpload"))
    body = flask.request.get_json(silent=True) or {}
    owner = (body.get("initializeUploadRequest") or {}).get("owner")
    if owner not in (ORGANIZATION_URN, token.account_id):
        raise EmulatorError(403, _error(403, f"Not enough permissions to upload images for {owner}",
                                        service_error_code=100))
    image_id = f"C4E{store.next_seq():013d}"
    urn = f"urn:li:image:{image_id}"
    store.add_media(urn, str(owner), {"owner": owner, "status": "WAITING_UPLOAD"})
    upload_url = flask.url_for("upload", image_id=image_id, _external=True)
    return {"value": {"uploadUrlExpiresAt": int((time.time() + 3600) * 1000), "uploadUrl": upload_url,
                      "image": urn}}


def _validate_post(store: SocialStore, token: Token, body: Any) -> tuple[str, str]:
    """The author and commentary of a valid create request."""
    if not isinstance(body, dict):
        raise EmulatorError(400, _error(400, "The request body must be a JSON object"))
    author, commentary = body.get("author"), body.get("commentary", "")
    if author not in (ORGANIZATION_URN, token.account_id):
        raise EmulatorError(403, _error(403, f"Not enough permissions to post as {author}", service_error_code=100))
    if not isinstance(commentary, str) or len(commentary) > MAX_COMMENTARY:
        raise EmulatorError(422, _error(422, f"commentary must be text of at most {MAX_COMMENTARY} characters"))
    for field, allowed in (("visibility", ("PUBLIC", "CONNECTIONS", "LOGGED_IN")), ("lifecycleState", ("PUBLISHED",))):
        if body.get(field) not in allowed:
            raise EmulatorError(422, _error(422, f"{field} must be one of {list(allowed)}"))
    if not isinstance(body.get("distribution"), dict):
        raise EmulatorError(422, _error(422, "distribution is required"))
    media = ((body.get("content") or {}).get("media") or {}).get("id")
    if media is not None:
        image = store.media(str(media))
        if image is None or image["status"] != "AVAILABLE":
            raise EmulatorError(422, _error(422, f"Media {media} is not available"))
    return str(author), commentary


def _create_post(store: SocialStore, token: Token) -> Any:
    fault = store.take_fault(CREATE_ROUTE)
    if fault is not None and fault.mode == "429":
        raise EmulatorError(429, _error(429, "Resource level throttle APPLICATION DAY limit for calls to this "
                                             "resource is reached."),
                            {"Retry-After": str(fault.retry_after_seconds)})
    body = flask.request.get_json(silent=True)
    author, commentary = _validate_post(store, token, body)
    since = time.time() - DUPLICATE_WINDOW_SECONDS
    for earlier in store.posts(author, newest_first=True):
        if earlier["commentary"] == commentary and earlier["createdAt"] >= since * 1000:
            raise EmulatorError(422, {
                "errorDetailType": "com.linkedin.common.error.BadRequest",
                "message": f"Content is a duplicate of {earlier['id']}",
                "errorDetails": {"inputErrors": [{"description": "Duplicate post is detected", "input": {},
                                                  "code": "DUPLICATE_POST"}]},
                "status": 422})
    urn = f"urn:li:share:{FIRST_SHARE_ID + store.next_seq()}"
    now_ms = int(time.time() * 1000)
    store.add_post(urn, author, {**body, "id": urn, "createdAt": now_ms, "publishedAt": now_ms,
                                 "lastModifiedAt": now_ms})
    if fault is not None and fault.mode == "timeout_after_create":
        time.sleep(fault.hold_seconds)
    if fault is not None and fault.mode == "500_after_create":
        raise EmulatorError(500, _error(500, "Internal Server Error"))
    response = flask.Response(status=201)
    response.headers["x-restli-id"] = urn
    response.headers["x-linkedin-id"] = urn
    return response
