"""Meta Graph emulator: Facebook Login, a Facebook Page's feed and photos, Instagram content publishing.

Mounted at `/meta` in the local stack; `META_GRAPH_URL` and `META_DIALOG_URL` both point at it. Wire shapes
follow reference `publishing-apis.md` §4: every Graph path has a `/vNN.0/` prefix (any version is served),
the token comes as the `access_token` query or form parameter (as facebook-business sends it) or as a
Bearer header, bodies are form-encoded or JSON, errors have Graph's shape, and an `appsecret_proof`, when
sent, must be the HMAC-SHA256 of the token keyed with the app secret.

- Login: `GET /vNN/dialog/oauth` approves when followed (302 to `redirect_uri` with `code` and `state`);
  `GET /vNN/oauth/access_token` trades a single-use code for a short-lived user token, or
  (`grant_type=fb_exchange_token`) a user token for a long-lived one; `GET /vNN/me/accounts` lists the one
  Page with its Page token and Instagram business account.
- Instagram: `POST /{ig}/media` fetches `image_url` (it must answer 200 with a JPEG, as Meta's fetcher
  requires) and creates an invisible container, `IN_PROGRESS` for its first status read, then `FINISHED`
  (`EXPIRED` after 24 h); `POST /{ig}/media_publish` publishes a `FINISHED` container once (it is then
  `PUBLISHED`, and a second publish is refused); `GET /{ig}/content_publishing_limit` counts the 24-hour
  quota (50; the 51st publish is error 9); `GET /{ig}/media` lists media newest first.
- Facebook: `POST /{page}/feed` (error 506 for the same message as the Page's last post) and
  `POST /{page}/photos` (`url` + `caption`); `GET /{page}/feed` lists posts newest first.
- `GET /{id}?fields=…` reads a container, a medium or a post.

Test side: `GET /__emu/posts` (what was published), `/__emu/faults` (see `_graph`).
State lives in the stack's Postgres (schema `meta_emulator`), so a restart loses nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import flask
import httpx

from infra.local.emulators._graph import (
    GraphError,
    GraphStore,
    bad_parameter,
    before_call,
    expired_token,
    hold_back,
    new_token,
    params,
    register_control_routes,
    request_token,
    revoked_token,
)
from infra.local.emulators.config import EmulatorConfig

LOCAL_APP_ID = "1200000000000001"
LOCAL_APP_SECRET = "local-meta-app-secret"
USER_ID = "100000000000001"
PAGE_ID = "102000000000001"
PAGE_NAME = "Muse Local Page"
INSTAGRAM_ID = "17841400000000001"
INSTAGRAM_USERNAME = "muse.local"
QUOTA_TOTAL = 50
QUOTA_SECONDS = 86400
CONTAINER_TTL_SECONDS = 86400
SHORT_TOKEN_SECONDS = 2 * 3600
LONG_TOKEN_SECONDS = 60 * 86400
JPEG_MAGIC = b"\xff\xd8\xff"

SCHEMA = "meta_emulator"
_SCHEMA_LOCK = 0x05_7A_4D_01
_FIELDS = {
    "container": ("id", "status_code", "status"),
    "ig_media": ("id", "caption", "media_type", "media_url", "permalink", "timestamp", "alt_text"),
    "fb_post": ("id", "message", "created_time", "permalink_url", "full_picture"),
}


def _stamp(moment: float) -> str:
    """Graph's timestamp format, `2026-12-01T20:23:05+0000`."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _view(document: dict[str, Any]) -> dict[str, Any]:
    """The requested `fields` of an object (its default fields when none are asked for)."""
    kind = document["_kind"]
    asked = [field.strip() for field in flask.request.args.get("fields", "").split(",") if field.strip()]
    names = asked or list(_FIELDS[kind])
    view = {name: document[name] for name in names if document.get(name) is not None}
    view["id"] = document["id"]
    return view


def _since() -> float:
    raw = flask.request.args.get("since")
    if raw is None:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        try:
            return datetime.fromisoformat(raw).timestamp()
        except ValueError as exc:
            raise bad_parameter("`since` must be a Unix timestamp or an ISO 8601 time") from exc


def _limit() -> int:
    raw = flask.request.args.get("limit", "25")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise bad_parameter("`limit` must be between 1 and 100")
    return int(raw)


def _fetch_jpeg(url: Any) -> None:
    """Fetch the media as Meta does; refuse what is unreachable or not a JPEG (error 9004)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise bad_parameter("Only photo or video can be accepted as media type: `image_url` is required")
    try:
        answer = httpx.get(url, timeout=5.0, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise GraphError(400, 9004, f"The media could not be fetched from this URI: {exc}",
                         subcode=2207052) from exc
    if answer.status_code != 200:
        raise GraphError(400, 9004, f"The media could not be fetched from this URI (HTTP {answer.status_code})",
                         subcode=2207052)
    if not answer.content.startswith(JPEG_MAGIC):
        raise GraphError(400, 9004, "Only photo or video can be accepted as media type: images must be JPEG",
                         subcode=2207026)


def create_app(config: EmulatorConfig, *, app_secret: str = LOCAL_APP_SECRET) -> flask.Flask:
    """Build the Meta Graph emulator over `config.database_url`."""
    app = flask.Flask(__name__)
    app.url_map.strict_slashes = False
    store = GraphStore(config.database_url, schema=SCHEMA, lock=_SCHEMA_LOCK)
    app.extensions["meta_emulator"] = store
    register_control_routes(app, store)

    def authorized(route: str) -> tuple[str, dict[str, Any] | None]:
        token = request_token()
        proof = flask.request.args.get("appsecret_proof") or flask.request.form.get("appsecret_proof")
        if proof is not None:
            expected = hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(proof, expected):
                raise bad_parameter("Invalid appsecret_proof provided in the API argument")
        return token, before_call(store, route, token)

    def quota_usage(account: str) -> int:
        return len(store.listing(("ig_media",), account, since=time.time() - QUOTA_SECONDS, limit=1000))

    def container_state(container: dict[str, Any]) -> dict[str, Any]:
        """Advance a container as Meta's processing would, and persist it."""
        status = container["status_code"]
        if status in ("IN_PROGRESS", "FINISHED") and time.time() - container["created_at"] > CONTAINER_TTL_SECONDS:
            store.update(container["id"], {"status_code": "EXPIRED", "status": "Expired"})
            return {**container, "status_code": "EXPIRED", "status": "Expired"}
        if status == "IN_PROGRESS":
            store.update(container["id"], {"status_code": "FINISHED", "status": "Finished"},
                         expect={"status_code": "IN_PROGRESS"})
        return container

    @app.get("/<version>/dialog/oauth")
    def dialog(version: str) -> Any:
        args = flask.request.args
        if args.get("client_id") != LOCAL_APP_ID:
            raise GraphError(400, 101, "Error validating application. Invalid application ID.")
        redirect_uri = args.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            raise bad_parameter("`redirect_uri` must be an absolute http(s) URL")
        code = new_token("AQ")
        store.add_token(code, kind="code", subject=redirect_uri, expires_at=int(time.time()) + 600,
                        document={"scope": args.get("scope", "")})
        query = {"code": code, **({"state": args["state"]} if "state" in args else {})}
        separator = "&" if "?" in redirect_uri else "?"
        return flask.redirect(f"{redirect_uri}{separator}{urlencode(query)}#_=_", 302)

    @app.get("/<version>/oauth/access_token")
    def access_token(version: str) -> Any:
        args = flask.request.args
        if args.get("client_id") != LOCAL_APP_ID or args.get("client_secret") != app_secret:
            raise GraphError(400, 1, "Error validating client secret.")
        if args.get("grant_type") == "fb_exchange_token":
            row = store.token(args.get("fb_exchange_token", ""))
            if row is None or row["kind"] not in ("user_short", "user_long"):
                raise GraphError(400, 190, "Invalid OAuth access token - Cannot parse access token")
            if row["revoked"]:
                raise revoked_token()
            if row["expires_at"] is not None and row["expires_at"] <= time.time():
                raise expired_token()
            token = new_token("EAAL")
            store.add_token(token, kind="user_long", subject=USER_ID,
                            expires_at=int(time.time()) + LONG_TOKEN_SECONDS)
            return {"access_token": token, "token_type": "bearer", "expires_in": LONG_TOKEN_SECONDS}
        code = store.take_token(args.get("code", ""), "code")
        if code is None or (code["expires_at"] or 0) <= time.time():
            raise GraphError(400, 100, "This authorization code has expired or has been used.", subcode=36009)
        if code["subject"] != args.get("redirect_uri"):
            raise GraphError(400, 100, "Error validating verification code. Please make sure your redirect_uri is "
                             "identical to the one you used in the OAuth dialog request", subcode=36008)
        token = new_token("EAAS")
        store.add_token(token, kind="user_short", subject=USER_ID, expires_at=int(time.time()) + SHORT_TOKEN_SECONDS,
                        document=code["document"])
        return {"access_token": token, "token_type": "bearer", "expires_in": SHORT_TOKEN_SECONDS}

    @app.get("/<version>/me")
    def me(version: str) -> Any:
        authorized("me")
        return {"id": USER_ID, "name": "Local Marketer"}

    @app.get("/<version>/me/accounts")
    def accounts(version: str) -> Any:
        token, _ = authorized("accounts")
        row = store.token(token)
        assert row is not None
        if row["kind"] not in ("user_short", "user_long"):
            raise bad_parameter("A user access token is required to list the Pages a person manages")
        page_token = new_token("EAAP")
        store.add_token(page_token, kind="page", subject=PAGE_ID,
                        expires_at=None if row["kind"] == "user_long" else row["expires_at"])
        page = {"id": PAGE_ID, "name": PAGE_NAME, "access_token": page_token, "category": "Brand",
                "tasks": ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"],
                "instagram_business_account": {"id": INSTAGRAM_ID}}
        return {"data": [page], "paging": {"cursors": {"before": "MAZDZD", "after": "MAZDZD"}}}

    @app.post("/<version>/<account>/media")
    def create_container(version: str, account: str) -> Any:
        _own(account, INSTAGRAM_ID)
        _, fault = authorized("media")
        body = params()
        if body.get("media_type") not in (None, "", "IMAGE"):
            raise bad_parameter("This emulator publishes single images (no `media_type`)")
        _fetch_jpeg(body.get("image_url"))
        caption = str(body.get("caption", ""))
        if len(caption) > 2200:
            raise bad_parameter("The caption is longer than 2200 characters", subcode=2207010)
        container = store.add("container", account, {
            "status_code": "IN_PROGRESS", "status": "In progress", "image_url": body["image_url"],
            "caption": caption, "alt_text": body.get("alt_text")}, id_base=17890000000000000)
        hold_back(fault)
        return {"id": container["id"]}

    @app.post("/<version>/<account>/media_publish")
    def media_publish(version: str, account: str) -> Any:
        _own(account, INSTAGRAM_ID)
        _, fault = authorized("media_publish")
        creation_id = str(params().get("creation_id", ""))
        container = store.get(creation_id)
        if container is None or container["_kind"] != "container":
            raise bad_parameter(f"Media ID {creation_id!r} is not available", subcode=2207006)
        container = container_state(container)
        if container["status_code"] == "PUBLISHED":
            raise GraphError(400, 9007, "The media has already been published", subcode=2207008)
        if container["status_code"] != "FINISHED":
            raise GraphError(400, 9007, "Media ID is not available: the media is not ready for publishing, "
                             "please wait for a moment", subcode=2207027)
        if quota_usage(account) >= QUOTA_TOTAL:
            raise GraphError(400, 9, "Application request limit reached: the account published its 24-hour quota",
                             subcode=2207042)
        if not store.update(creation_id, {"status_code": "PUBLISHED", "status": "Published"},
                            expect={"status_code": "FINISHED"}):
            raise GraphError(400, 9007, "The media has already been published", subcode=2207008)
        now = time.time()
        media = store.add("ig_media", account, {
            "caption": container["caption"], "media_type": "IMAGE", "media_url": container["image_url"],
            "alt_text": container.get("alt_text"), "timestamp": _stamp(now), "container_id": creation_id,
            "username": INSTAGRAM_USERNAME}, id_base=18000000000000000)
        store.update(media["id"], {"permalink": f"https://www.instagram.com/p/MUSE{media['id'][-8:]}/"})
        store.update(creation_id, {"media_id": media["id"]})
        hold_back(fault)
        return {"id": media["id"]}

    @app.get("/<version>/<account>/content_publishing_limit")
    def publishing_limit(version: str, account: str) -> Any:
        _own(account, INSTAGRAM_ID)
        authorized("content_publishing_limit")
        return {"data": [{"quota_usage": quota_usage(account),
                          "config": {"quota_total": QUOTA_TOTAL, "quota_duration": QUOTA_SECONDS}}]}

    @app.get("/<version>/<account>/media")
    def list_media(version: str, account: str) -> Any:
        _own(account, INSTAGRAM_ID)
        authorized("list_media")
        found = store.listing(("ig_media",), account, since=_since(), limit=_limit())
        return {"data": [_view(item) for item in found]}

    @app.post("/<version>/<page>/feed")
    def create_post(version: str, page: str) -> Any:
        _own(page, PAGE_ID)
        _, fault = authorized("feed")
        body = params()
        message = str(body.get("message", "")).strip()
        if not message and not body.get("link"):
            raise bad_parameter("Missing message or attachment")
        latest = store.listing(("fb_post",), page, limit=1)
        if latest and latest[0].get("message") == message and not latest[0].get("full_picture"):
            raise GraphError(400, 506, "Duplicate status message", kind="OAuthException")
        post = _add_post(store, page, message, link=body.get("link"))
        hold_back(fault)
        return {"id": post["id"]}

    @app.post("/<version>/<page>/photos")
    def create_photo(version: str, page: str) -> Any:
        _own(page, PAGE_ID)
        _, fault = authorized("photos")
        body = params()
        _fetch_jpeg(body.get("url"))
        post = _add_post(store, page, str(body.get("caption") or body.get("message") or "").strip(),
                         picture=body["url"])
        hold_back(fault)
        return {"id": post["id"].split("_", 1)[1], "post_id": post["id"]}

    @app.get("/<version>/<page>/feed")
    @app.get("/<version>/<page>/published_posts")
    def list_posts(version: str, page: str) -> Any:
        _own(page, PAGE_ID)
        authorized("list_feed")
        found = store.listing(("fb_post",), page, since=_since(), limit=_limit())
        return {"data": [_view(item) for item in found]}

    @app.get("/<version>/<object_id>")
    def read_object(version: str, object_id: str) -> Any:
        authorized("read")
        found = store.get(object_id)
        if found is None:
            raise bad_parameter(f"Unsupported get request. Object with ID '{object_id}' does not exist",
                                subcode=33)
        if found["_kind"] == "container":
            found = {**container_state(found), "_kind": "container"}
        return _view(found)

    @app.get("/__emu/posts")
    def posts() -> Any:
        published = store.listing(("ig_media", "fb_post"), limit=1000)
        containers = store.listing(("container",), limit=1000)
        return {"posts": [_debug(item) for item in published], "containers": [_debug(item) for item in containers]}

    return app


def _own(object_id: str, expected: str) -> None:
    if object_id != expected:
        raise bad_parameter(f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot be "
                            "loaded due to missing permissions, or does not support this operation", subcode=33)


def _add_post(store: GraphStore, page: str, message: str, *, link: Any = None,
              picture: str | None = None) -> dict[str, Any]:
    now = time.time()
    post = store.add("fb_post", page, {"message": message, "link": link, "full_picture": picture,
                                       "created_time": _stamp(now)}, id_base=800000000000000, prefix=f"{page}_")
    url = f"https://www.facebook.com/{page}/posts/{post['id'].split('_', 1)[1]}"
    store.update(post["id"], {"permalink_url": url})
    return {**post, "permalink_url": url}


def _debug(item: dict[str, Any]) -> dict[str, Any]:
    kind = {"ig_media": "instagram", "fb_post": "facebook", "container": "container"}[item["_kind"]]
    return {"platform": kind, **{key: value for key, value in item.items() if key != "_kind"}}
