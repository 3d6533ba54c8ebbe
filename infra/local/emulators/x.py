"""X API v2 emulator: OAuth 2.0 with PKCE, posts, owned timelines and one-shot media upload.

Wire shapes follow X's OpenAPI 2.167 as `xdk` sends and parses them (reference `publishing-apis.md` §3):
- `GET /i/oauth2/authorize` approves when followed: it redirects to `redirect_uri` with `code` and `state`
  (`outcome=deny` redirects with `error=access_denied`). `code_challenge` is required; codes live 30 s.
- `POST /2/oauth2/token` (form; HTTP Basic for confidential clients, `client_id` in the body for public
  ones): `authorization_code` verifies the PKCE verifier (S256 or plain) and the exact `redirect_uri`;
  `refresh_token` rotates the refresh token. Access tokens live 2 hours.
- `GET /2/users/me`, `POST /2/tweets` (201 `{data: {id, text}}`, duplicate text refused with 403, links
  shortened to t.co as X does, `x-rate-limit-*` headers), `GET /2/tweets/{id}`,
  `GET /2/users/{id}/tweets` (newest first, `start_time`, `max_results`, `pagination_token`),
  `POST /2/media/upload` (base64 JSON or multipart).
- Errors are problem JSON (`title`, `detail`, `type`, `status`). Field names follow the spec xdk is generated
  from (`post.fields`, `referenced_posts`, `edit_history_post_ids`).

State (tokens, posts, media, faults) lives in the stack's Postgres, schema `x_emulator`. Control:
`GET /__emu/posts`, `POST /__emu/faults` (see `infra.local.emulators._social`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from datetime import UTC, datetime
from typing import Any

import flask

from infra.local.emulators._social import (
    EmulatorError,
    SocialStore,
    Token,
    bearer_token,
    error_response,
    pkce_matches,
    register_emulator_routes,
    with_query,
)
from infra.local.emulators.config import EmulatorConfig

SCHEMA = "x_emulator"
_SCHEMA_LOCK = 0x05_7A_50_0B
CODE_TTL_SECONDS = 30
ACCESS_TTL_SECONDS = 7200
REFRESH_TTL_SECONDS = 180 * 86400
MAX_WEIGHTED_LENGTH = 280
URL_WEIGHT = 23
POSTS_PER_WINDOW = 100
"""`POST /2/tweets` per user per 15 minutes (reported in the rate-limit headers)."""
DUPLICATE_WINDOW_SECONDS = 86400
TWITTER_EPOCH_MS = 1288834974657
USER = {"id": "1790000000000000001", "name": "Muse Local", "username": "muse_local"}
CREATE_ROUTE = "POST /2/tweets"
_URL = re.compile(r"https?://\S+")


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the X emulator; its state lives in `config.database_url` and outlives the app."""
    app = flask.Flask(__name__)
    store = SocialStore(config.database_url, schema=SCHEMA, lock=_SCHEMA_LOCK,
                        missing=lambda: EmulatorError(500, _problem(500, "The X emulator has no database_url")))
    app.extensions["x_emulator"] = store
    register_emulator_routes(app, store, routes=(CREATE_ROUTE, "POST /2/media/upload"))
    app.register_error_handler(EmulatorError, error_response)

    @app.get("/i/oauth2/authorize")
    def authorize() -> Any:
        return _authorize(config, store)

    @app.post("/2/oauth2/token")
    def token() -> Any:
        return _token(config, store)

    @app.get("/2/users/me")
    def me() -> Any:
        _require(store)
        return {"data": USER}

    @app.post("/2/tweets")
    def create_post() -> Any:
        return _create_post(store, _require(store))

    @app.get("/2/tweets/<post_id>")
    def get_post(post_id: str) -> Any:
        _require(store)
        post = store.post(post_id)
        if post is None:
            raise EmulatorError(404, {"errors": [{"value": post_id, "detail": f"Could not find tweet with id: "
                                                  f"[{post_id}].", "title": "Not Found Error",
                                                  "resource_type": "tweet", "parameter": "id",
                                                  "type": "https://api.twitter.com/2/problems/resource-not-found"}]})
        return {"data": _view(post)}

    @app.get("/2/users/<user_id>/tweets")
    def timeline(user_id: str) -> Any:
        _require(store)
        return _timeline(store, user_id)

    @app.post("/2/media/upload")
    def upload() -> Any:
        return _upload(store, _require(store))

    return app


def _problem(status: int, detail: str, kind: str = "about:blank", title: str = "") -> dict[str, Any]:
    return {"title": title or {400: "Invalid Request", 401: "Unauthorized", 403: "Forbidden",
                               429: "Too Many Requests"}.get(status, "Error"),
            "detail": detail, "type": kind, "status": status}


def _require(store: SocialStore) -> Token:
    token, _ = bearer_token(store)
    if token is None:
        raise EmulatorError(401, _problem(401, "Unauthorized"))
    return token


def _oauth_error(status: int, error: str, description: str) -> EmulatorError:
    return EmulatorError(status, {"error": error, "error_description": description})


def _authorize(config: EmulatorConfig, store: SocialStore) -> Any:
    args = flask.request.args
    redirect_uri = args.get("redirect_uri", "")
    if args.get("client_id") != config.x_client_id or not redirect_uri.startswith(("http://", "https://")):
        raise _oauth_error(400, "invalid_request", "Unknown client_id or missing redirect_uri")
    state = args.get("state", "")
    if args.get("outcome") == "deny":
        return flask.redirect(with_query(redirect_uri, error="access_denied", state=state))
    challenge, method = args.get("code_challenge"), args.get("code_challenge_method", "plain")
    if args.get("response_type") != "code" or not challenge or method not in ("S256", "plain") or not state:
        raise _oauth_error(400, "invalid_request",
                           "response_type=code, state and code_challenge (S256 or plain) are required")
    code = store.issue_code(client_id=config.x_client_id, redirect_uri=redirect_uri,
                            scope=args.get("scope", ""), account_id=USER["id"], code_challenge=challenge,
                            challenge_method=method)
    return flask.redirect(with_query(redirect_uri, state=state, code=code))


def _client_id(config: EmulatorConfig) -> str:
    """The authenticated client: Basic credentials must match the app; a public client names itself."""
    auth = flask.request.authorization
    if auth is not None and auth.type == "basic":
        if auth.username != config.x_client_id or auth.password != config.x_client_secret:
            raise _oauth_error(401, "unauthorized_client", "Missing valid authorization header")
        return config.x_client_id
    if flask.request.form.get("client_id") != config.x_client_id:
        raise _oauth_error(401, "unauthorized_client", "Missing valid authorization header")
    return config.x_client_id


def _token(config: EmulatorConfig, store: SocialStore) -> Any:
    form = flask.request.form
    client_id = _client_id(config)
    grant = form.get("grant_type")
    if grant == "authorization_code":
        row = store.take_code(form.get("code", ""))
        if row is None or row["client_id"] != client_id or time.time() - row["issued_at"] > CODE_TTL_SECONDS:
            raise _oauth_error(400, "invalid_request", "Value passed for the authorization code was invalid.")
        if row["redirect_uri"] != form.get("redirect_uri"):
            raise _oauth_error(400, "invalid_request", "Value passed for the redirect uri did not match the uri "
                                                       "of the authorization code.")
        if not pkce_matches(form.get("code_verifier", ""), row["code_challenge"], row["challenge_method"]):
            raise _oauth_error(400, "invalid_request", "Value passed for the code verifier did not match the "
                                                       "code challenge.")
        account_id, scope = row["account_id"], row["scope"]
    elif grant == "refresh_token":
        old = store.token(form.get("refresh_token", ""), "refresh")
        if old is None or old.revoked or old.expired or old.client_id != client_id:
            raise _oauth_error(400, "invalid_request", "Value passed for the token was invalid.")
        store.revoke_token(old.token)
        account_id, scope = old.account_id, old.scope
    else:
        raise _oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
    access = store.issue_token(kind="access", account_id=account_id, client_id=client_id, scope=scope,
                               ttl_seconds=ACCESS_TTL_SECONDS)
    answer: dict[str, Any] = {"token_type": "bearer", "expires_in": ACCESS_TTL_SECONDS,
                              "access_token": access.token, "scope": scope}
    if "offline.access" in scope.split():
        answer["refresh_token"] = store.issue_token(kind="refresh", account_id=account_id, client_id=client_id,
                                                    scope=scope, ttl_seconds=REFRESH_TTL_SECONDS).token
    return answer


def _shorten(text: str) -> str:
    """Links as X stores them: each URL becomes a 23-character t.co link."""
    return _URL.sub(lambda m: "https://t.co/" + hashlib.sha256(m.group().encode()).hexdigest()[:10], text)


def _weighted_length(text: str) -> int:
    return len(_URL.sub("", text)) + URL_WEIGHT * len(_URL.findall(text))


def _snowflake(store: SocialStore) -> str:
    return str(((int(time.time() * 1000) - TWITTER_EPOCH_MS) << 22) | (store.next_seq() % (1 << 22)))


def _rate_headers(store: SocialStore, account_id: str) -> dict[str, str]:
    window_start = time.time() - 900
    used = sum(1 for post in store.posts(account_id) if post["created_ts"] >= window_start)
    return {"x-rate-limit-limit": str(POSTS_PER_WINDOW),
            "x-rate-limit-remaining": str(max(0, POSTS_PER_WINDOW - used)),
            "x-rate-limit-reset": str(int(time.time()) + 900)}


def _create_post(store: SocialStore, token: Token) -> Any:
    fault = store.take_fault(CREATE_ROUTE)
    if fault is not None and fault.mode == "429":
        reset = int(time.time()) + fault.retry_after_seconds
        raise EmulatorError(429, _problem(429, "Too Many Requests", "about:blank"),
                            {"x-rate-limit-limit": str(POSTS_PER_WINDOW), "x-rate-limit-remaining": "0",
                             "x-rate-limit-reset": str(reset)})
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict):
        raise EmulatorError(400, _problem(400, "The request body is not a JSON object.",
                                          "https://api.twitter.com/2/problems/invalid-request"))
    text = body.get("text") or ""
    media_ids = (body.get("media") or {}).get("media_ids") or []
    if not isinstance(text, str) or (not text and not media_ids):
        raise EmulatorError(400, _problem(400, "text is required unless media is attached.",
                                          "https://api.twitter.com/2/problems/invalid-request"))
    if _weighted_length(text) > MAX_WEIGHTED_LENGTH:
        raise EmulatorError(400, _problem(400, "Your Tweet text is too long. For more information on how X "
                                               "counts characters, see https://docs.x.com/counting-characters",
                                          "https://api.twitter.com/2/problems/invalid-request"))
    for media_id in media_ids:
        if store.media(str(media_id)) is None:
            raise EmulatorError(400, _problem(400, f"Your media IDs are invalid: {media_id}.",
                                              "https://api.twitter.com/2/problems/invalid-request"))
    reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
    if reply_to is not None and store.post(str(reply_to)) is None:
        raise EmulatorError(400, _problem(400, "The post you are replying to has been deleted or is not "
                                               "visible to you.",
                                          "https://api.twitter.com/2/problems/invalid-request"))
    stored_text = _shorten(text)
    since = time.time() - DUPLICATE_WINDOW_SECONDS
    if any(post["text"] == stored_text and post["created_ts"] >= since for post in store.posts(token.account_id)):
        raise EmulatorError(403, _problem(403, "You are not allowed to create a Tweet with duplicate content."))
    post_id = _snowflake(store)
    now = time.time()
    document: dict[str, Any] = {
        "id": post_id, "text": stored_text, "author_id": token.account_id, "edit_history_post_ids": [post_id],
        "created_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "created_ts": now, "conversation_id": post_id, "media_ids": [str(m) for m in media_ids],
    }
    if reply_to is not None:
        parent = store.post(str(reply_to)) or {}
        document["conversation_id"] = parent.get("conversation_id", str(reply_to))
        document["referenced_posts"] = [{"type": "replied_to", "id": str(reply_to)}]
        document["in_reply_to_user_id"] = parent.get("author_id")
    store.add_post(post_id, token.account_id, document)
    if fault is not None and fault.mode == "timeout_after_create":
        time.sleep(fault.hold_seconds)
    if fault is not None and fault.mode == "500_after_create":
        raise EmulatorError(500, _problem(500, "Internal Server Error", title="Internal Server Error"))
    response = flask.jsonify({"data": {"id": post_id, "text": stored_text, "edit_history_post_ids": [post_id]}})
    response.status_code = 201
    response.headers.update(_rate_headers(store, token.account_id))
    return response


def _view(post: dict[str, Any]) -> dict[str, Any]:
    """A post as the API shows it (without the emulator's bookkeeping)."""
    hidden = {"created_ts", "media_ids"}
    view = {key: value for key, value in post.items() if key not in hidden}
    if post.get("media_ids"):
        view["attachments"] = {"media_keys": [f"3_{media_id}" for media_id in post["media_ids"]]}
    return view


def _timeline(store: SocialStore, user_id: str) -> Any:
    args = flask.request.args
    try:
        max_results = int(args.get("max_results", "10"))
    except ValueError:
        max_results = -1
    if not 5 <= max_results <= 100:
        raise EmulatorError(400, _problem(400, "The `max_results` query parameter value is not between 5 and 100",
                                          "https://api.twitter.com/2/problems/invalid-request"))
    posts = store.posts(user_id, newest_first=True)
    if args.get("start_time"):
        try:
            start = datetime.fromisoformat(args["start_time"].replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise EmulatorError(400, _problem(400, f"Invalid start_time: {exc}",
                                              "https://api.twitter.com/2/problems/invalid-request")) from exc
        posts = [post for post in posts if post["created_ts"] >= start]
    token = args.get("pagination_token") or "0"
    if not token.isdigit():
        raise EmulatorError(400, _problem(400, "Invalid pagination_token", "https://api.twitter.com/2/problems/invalid-request"))
    offset = int(token)
    page = posts[offset:offset + max_results]
    meta: dict[str, Any] = {"result_count": len(page)}
    if page:
        meta |= {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"]}
    if offset + max_results < len(posts):
        meta["next_token"] = str(offset + max_results)
    answer: dict[str, Any] = {"meta": meta}
    if page:
        answer["data"] = [_view(post) for post in page]
    return answer


def _upload(store: SocialStore, token: Token) -> Any:
    fault = store.take_fault("POST /2/media/upload")
    if fault is not None and fault.mode == "429":
        raise EmulatorError(429, _problem(429, "Too Many Requests"),
                            {"x-rate-limit-reset": str(int(time.time()) + fault.retry_after_seconds)})
    request = flask.request
    if request.is_json:
        body = request.get_json(silent=True) or {}
        try:
            data = base64.b64decode(str(body.get("media", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EmulatorError(400, _problem(400, "media must be base64-encoded",
                                              "https://api.twitter.com/2/problems/invalid-request")) from exc
        category = body.get("media_category")
    else:
        file = request.files.get("media")
        data = file.read() if file is not None else b""
        category = request.form.get("media_category")
    if not data or category not in ("tweet_image", "tweet_gif", "dm_image", "dm_gif"):
        raise EmulatorError(400, _problem(400, "media (non-empty) and an image media_category are required",
                                          "https://api.twitter.com/2/problems/invalid-request"))
    media_id = _snowflake(store)
    document = {"id": media_id, "media_key": f"3_{media_id}", "size": len(data), "expires_after_secs": 86400,
                "image": {"image_type": _image_type(data), "w": 1, "h": 1}, "sha256": hashlib.sha256(data).hexdigest()}
    store.add_media(media_id, token.account_id, document)
    return {"data": {key: value for key, value in document.items() if key != "sha256"}}


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"GIF8"):
        return "image/gif"
    return "image/jpeg"
