"""Facebook Page posts and Instagram content publishing through the Graph API, and the Meta connection (OAuth).

A small httpx client speaks to Graph rather than `facebook-business`: that SDK is built around the Marketing
API's object model and a process-wide default `FacebookAdsApi` session, while each publication here acts
with its own workspace's Page token, must make exactly one create attempt with an explicit timeout, and must
tell a timeout after the body was sent (the post may exist) from a refused connection (it does not). The
client sends form-encoded bodies and an `appsecret_proof` as facebook-business does, at `META_GRAPH_URL` /
`META_GRAPH_VERSION`, but the token as `Authorization: Bearer` rather than in the query string, so no URL (and
no log line of httpx, which logs every request URL at INFO) carries it. Login's code exchange must send its
secrets in the query; the process-wide log redaction (`shared.security.redact`) masks them in httpx's log records.

Instagram publishes in two phases (reference `publishing-apis.md` §4b-c): an image container, invisible until
published, so creating one again after a failure is safe; then `media_publish`, the one visible create. When
that call's outcome is unknown, the container's `status_code` tells whether it went through (`PUBLISHED`) and
the medium is found among the account's recent media by its caption. Facebook has no idempotency key: an
unknown outcome is reconciled by listing the Page's recent posts and matching the message.

The connection (`oauth`) is Facebook Login: code → short-lived user token → long-lived user token → the
Page's token and its Instagram business account id. The long-lived user token is kept as the refresh token:
refreshing exchanges it again and re-reads the Page token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlencode

import httpx

from shared.errors import ConfigurationError
from shared.publishing.ports import (
    ConnectionProvider,
    Credentials,
    ErrorKind,
    PlatformError,
    PostRequest,
    PostResult,
    Provider,
    TokenSet,
)
from shared.security.redact import install_secret_log_masking
from shared.settings import Settings

MetaProvider = Literal["facebook", "instagram"]
THROTTLING_CODES = frozenset({4, 17, 32, 341, 613, 80001, 80002, 80004})
"""Graph codes that mean "slow down": the call was not performed."""
PERMISSION_CODES = frozenset({10, *range(200, 300)})
RECONCILE_SLACK = timedelta(minutes=1)
QUOTA_RETRY_SECONDS = 3600
"""Instagram's publishing quota is a moving 24-hour window; an hour later a slot has likely freed."""
_SPACES = re.compile(r"\s+")


def caption_key(text: str) -> str:
    """sha256 of a caption or message with its whitespace normalised: how a published post is recognised."""
    return hashlib.sha256(_SPACES.sub(" ", text).strip().encode()).hexdigest()


def post_text(content: Mapping[str, Any]) -> str:
    """The text a Page post or an Instagram caption carries, from any channel's copy.

    `caption` (+ `hashtags`, `#` added where missing), else `text`, `message`, the `posts` of a thread joined
    by blank lines, or an email's `body`.
    """
    if isinstance(content.get("caption"), str):
        tags = [tag if tag.startswith("#") else f"#{tag}" for tag in content.get("hashtags") or [] if tag]
        caption: str = content["caption"].strip()
        return f"{caption}\n\n{' '.join(tags)}" if tags else caption
    for name in ("text", "message", "body"):
        if isinstance(content.get(name), str) and content[name].strip():
            return str(content[name]).strip()
    if isinstance(content.get("posts"), list):
        return "\n\n".join(str(part).strip() for part in content["posts"])
    return ""


def _graph_time(value: Any) -> datetime:
    """Graph's `2026-12-01T20:23:05+0000` (or ISO 8601) as an aware datetime; now when absent or unreadable."""
    if isinstance(value, str):
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except ValueError:
                pass
    return datetime.now(UTC)


def classify(status: int, error: Mapping[str, Any], *, create: bool) -> tuple[ErrorKind, int | None]:
    """What a Graph error means for the engine, and how long to wait when Graph throttles.

    `create`: the call would have made something visible, so a server-side failure leaves its outcome unknown.
    """
    code = error.get("code")
    if code == 190 or code == 102 or status == 401:
        return "reconnect", None
    if code in THROTTLING_CODES or status == 429:
        return "retryable", None
    if code == 9 or code == 368:
        return "retryable", QUOTA_RETRY_SECONDS
    if code == 506:
        return "ambiguous", None
    if code in PERMISSION_CODES:
        return "reconnect", None
    if status >= 500 or code in (1, 2):
        return ("ambiguous" if create else "retryable"), None
    return "permanent", None


def _reason(error: Mapping[str, Any], status: int) -> str:
    parts = [str(error.get("message") or f"HTTP {status}")]
    if error.get("code") is not None:
        parts.append(f"(code {error['code']}" + (f", subcode {error['error_subcode']})"
                                                  if error.get("error_subcode") else ")"))
    if error.get("error_user_msg"):
        parts.append(str(error["error_user_msg"]))
    return " ".join(parts)


@dataclass
class GraphClient:
    """One Graph API version at one base URL; no retries (a create is attempted once per call)."""

    base_url: str
    version: str
    timeout: float
    app_secret: str | None = None

    @cached_property
    def _client(self) -> httpx.Client:
        """One connection pool per client, kept for the process (httpx clients are thread-safe)."""
        return httpx.Client(base_url=f"{self.base_url.rstrip('/')}/{self.version}", timeout=self.timeout,
                            transport=httpx.HTTPTransport(retries=0))

    def _proof(self, token: str | None) -> dict[str, str]:
        if not token or not self.app_secret:
            return {}
        return {"appsecret_proof": hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()}

    def get(self, path: str, token: str | None, provider: Provider | ConnectionProvider,
            **query: Any) -> dict[str, Any]:
        """A read: every failure is retryable except the token's and a definite refusal."""
        params = {**self._proof(token), **{k: v for k, v in query.items() if v is not None}}
        return self._call("GET", path, provider, token=token, params=params, create=False)

    def post(self, path: str, token: str, provider: Provider, *, create: bool, **data: Any) -> dict[str, Any]:
        """A write, form-encoded; `create`: it makes something visible, so an unknown outcome is `ambiguous`."""
        form = {k: str(v) for k, v in data.items() if v is not None}
        return self._call("POST", path, provider, token=token, params=self._proof(token), data=form, create=create)

    def _call(self, method: str, path: str, provider: Provider | ConnectionProvider, *, token: str | None,
              params: dict[str, Any], create: bool, data: dict[str, str] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            response = self._client.request(method, path, params=params, data=data, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise PlatformError(f"Graph API unreachable ({type(exc).__name__}); nothing was sent.",
                                kind="retryable", provider=provider) from exc
        except httpx.HTTPError as exc:
            kind: ErrorKind = "ambiguous" if create else "retryable"
            raise PlatformError(f"Graph API call {method} {path.split('?')[0]} did not complete "
                                f"({type(exc).__name__}); its outcome is unknown.", kind=kind,
                                provider=provider) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code < 400 and isinstance(body, dict) and "error" not in body:
            return body
        error: dict[str, Any] = {}
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
        kind, retry_after = classify(response.status_code, error, create=create)
        raise PlatformError(f"{'Instagram' if provider == 'instagram' else 'Facebook'} refused {method} "
                            f"{path}: {_reason(error, response.status_code)}", kind=kind, provider=provider,
                            status=response.status_code, retry_after_seconds=retry_after)


install_secret_log_masking()


def graph_client(settings: Settings) -> GraphClient:
    secret = settings.meta_app_secret.get_secret_value() if settings.meta_app_secret else None
    return GraphClient(base_url=settings.meta_graph_url, version=settings.meta_graph_version,
                       timeout=settings.meta_timeout_seconds, app_secret=secret or None)


@dataclass
class InstagramAdapter:
    """An image post on the Page's Instagram business account: container, wait until `FINISHED`, publish."""

    graph: GraphClient
    container_wait_seconds: float
    provider: Provider = "instagram"

    def _account(self, credentials: Credentials) -> str:
        account = credentials.settings.get("instagram_account_id")
        if not account:
            raise PlatformError("The Meta connection has no Instagram business account: link one to the Facebook "
                                "Page, then reconnect Meta.", kind="reconnect", provider="instagram")
        return str(account)

    def publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        """Check the quota, create the container, wait for it, publish it once."""
        if not post.media:
            raise PlatformError("Instagram publishes nothing without an image: the post has no media (attach an "
                                "asset from the library or let one be generated).", kind="permanent",
                                provider="instagram")
        account, token = self._account(credentials), credentials.access_token
        caption = post_text(post.content)
        limit = self.graph.get(f"/{account}/content_publishing_limit", token, "instagram",
                               fields="quota_usage,config").get("data") or [{}]
        usage, total = limit[0].get("quota_usage"), (limit[0].get("config") or {}).get("quota_total")
        if isinstance(usage, int) and isinstance(total, int) and usage >= total:
            raise PlatformError(f"Instagram's publishing quota is used up ({usage} of {total} posts in 24 hours).",
                                kind="retryable", provider="instagram", retry_after_seconds=QUOTA_RETRY_SECONDS)
        image = post.media[0]
        try:
            container = self.graph.post(f"/{account}/media", token, "instagram", create=False,
                                        image_url=image.url, caption=caption, alt_text=image.alt_text or None)
        except PlatformError as exc:
            if exc.kind == "ambiguous":
                raise PlatformError(f"{exc.message} (an unpublished container is invisible: retry)",
                                    kind="retryable", provider="instagram") from exc
            raise
        container_id = str(container["id"])
        self._wait_until_finished(container_id, token)
        try:
            published = self.graph.post(f"/{account}/media_publish", token, "instagram", create=True,
                                        creation_id=container_id)
        except PlatformError as exc:
            if exc.kind != "ambiguous":
                raise
            found = self._published_container(container_id, account, token, caption)
            if found is None:
                raise
            return found
        return self._result(str(published["id"]), token)

    def _wait_until_finished(self, container_id: str, token: str) -> None:
        deadline, pause = time.monotonic() + self.container_wait_seconds, 0.2
        while True:
            state = self.graph.get(f"/{container_id}", token, "instagram", fields="status_code,status")
            status = state.get("status_code")
            if status == "FINISHED":
                return
            if status == "ERROR":
                raise PlatformError(f"Instagram could not process the image: {state.get('status') or 'ERROR'}.",
                                    kind="permanent", provider="instagram")
            if status == "EXPIRED" or status == "PUBLISHED":
                raise PlatformError(f"The Instagram container {container_id} is {status}; a new one is made on "
                                    "retry.", kind="retryable", provider="instagram")
            if time.monotonic() >= deadline:
                raise PlatformError(f"Instagram is still processing the image after {self.container_wait_seconds:g}"
                                    " s; retrying later.", kind="retryable", provider="instagram",
                                    retry_after_seconds=60)
            time.sleep(pause)
            pause = min(pause * 2, 3.0)

    def _published_container(self, container_id: str, account: str, token: str,
                             caption: str) -> PostResult | None:
        """After an unknown publish outcome: the medium, when the container says it was published."""
        try:
            state = self.graph.get(f"/{container_id}", token, "instagram", fields="status_code")
        except PlatformError:
            return None
        if state.get("status_code") != "PUBLISHED":
            return None
        return self._find(account, token, caption, datetime.now(UTC) - timedelta(hours=1))

    def _find(self, account: str, token: str, caption: str, since: datetime) -> PostResult | None:
        listed = self.graph.get(f"/{account}/media", token, "instagram", fields="id,caption,permalink,timestamp",
                                limit=50).get("data") or []
        key, earliest = caption_key(caption), since - RECONCILE_SLACK
        for medium in listed:
            published = _graph_time(medium.get("timestamp"))
            if caption_key(str(medium.get("caption") or "")) == key and published >= earliest:
                return PostResult(external_id=str(medium["id"]), url=str(medium.get("permalink") or ""),
                                  published_at=published)
        return None

    def _result(self, media_id: str, token: str) -> PostResult:
        try:
            medium = self.graph.get(f"/{media_id}", token, "instagram", fields="permalink,timestamp")
        except PlatformError:
            medium = {}
        return PostResult(external_id=media_id, url=str(medium.get("permalink") or "https://www.instagram.com/"),
                          published_at=_graph_time(medium.get("timestamp")))

    def reconcile(self, credentials: Credentials, post: PostRequest, since: datetime) -> PostResult | None:
        """The account's recent medium whose caption is this post's, published since `since` (less a minute)."""
        return self._find(self._account(credentials), credentials.access_token, post_text(post.content), since)


@dataclass
class FacebookAdapter:
    """A Page post: `/{page}/photos` with the image when there is one, else `/{page}/feed`."""

    graph: GraphClient
    provider: Provider = "facebook"

    def publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        """Create the Page post once."""
        page, token, message = credentials.account_id, credentials.access_token, post_text(post.content)
        link = post.content.get("link") or post.content.get("url")
        if not message and not link and not post.media:
            raise PlatformError("The Facebook post has no text, link or image (the copy needs `text` or "
                                "`caption`).", kind="permanent", provider="facebook")
        if post.media:
            created = self.graph.post(f"/{page}/photos", token, "facebook", create=True, url=post.media[0].url,
                                      caption=message, published="true")
            post_id = str(created.get("post_id") or f"{page}_{created['id']}")
        else:
            created = self.graph.post(f"/{page}/feed", token, "facebook", create=True, message=message,
                                      link=link if isinstance(link, str) else None)
            post_id = str(created["id"])
        try:
            found = self.graph.get(f"/{post_id}", token, "facebook", fields="permalink_url,created_time")
        except PlatformError:
            found = {}
        url = str(found.get("permalink_url") or f"https://www.facebook.com/{post_id}")
        return PostResult(external_id=post_id, url=url, published_at=_graph_time(found.get("created_time")))

    def reconcile(self, credentials: Credentials, post: PostRequest, since: datetime) -> PostResult | None:
        """The Page's recent post whose message is this post's, created since `since` (less a minute)."""
        earliest = since - RECONCILE_SLACK
        listed = self.graph.get(f"/{credentials.account_id}/feed", credentials.access_token, "facebook",
                                fields="id,message,created_time,permalink_url", limit=50,
                                since=int(earliest.timestamp())).get("data") or []
        key = caption_key(post_text(post.content))
        for item in listed:
            created = _graph_time(item.get("created_time"))
            if caption_key(str(item.get("message") or "")) == key and created >= earliest:
                return PostResult(external_id=str(item["id"]), url=str(item.get("permalink_url") or ""),
                                  published_at=created)
        return None


@dataclass
class MetaOAuth:
    """Facebook Login for a Page and its Instagram business account (no PKCE: a confidential web client)."""

    graph: GraphClient
    dialog_url: str
    app_id: str
    app_secret: str
    scopes: tuple[str, ...]
    provider: ConnectionProvider = "meta"
    uses_pkce: bool = False

    def authorization_url(self, *, state: str, redirect_uri: str, code_challenge: str | None) -> str:
        """Facebook Login's dialog for the app, asking for the Page and Instagram publishing scopes."""
        query = {"client_id": self.app_id, "redirect_uri": redirect_uri, "state": state, "response_type": "code",
                 "scope": ",".join(self.scopes)}
        return f"{self.dialog_url.rstrip('/')}/{self.graph.version}/dialog/oauth?{urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None) -> TokenSet:
        """Code → short-lived user token → long-lived user token → the Page token and Instagram account."""
        short = self.graph.get("/oauth/access_token", None, "meta", client_id=self.app_id,
                               client_secret=self.app_secret, redirect_uri=redirect_uri, code=code)
        return self._page_tokens(str(short["access_token"]))

    def refresh(self, refresh_token: str) -> TokenSet:
        """Exchange the long-lived user token again and re-read the Page token."""
        return self._page_tokens(refresh_token)

    def _page_tokens(self, user_token: str) -> TokenSet:
        long = self.graph.get("/oauth/access_token", None, "meta", grant_type="fb_exchange_token",
                              client_id=self.app_id, client_secret=self.app_secret, fb_exchange_token=user_token)
        long_token = str(long["access_token"])
        expires_in = long.get("expires_in")
        pages = self.graph.get("/me/accounts", long_token, "meta",
                               fields="id,name,access_token,instagram_business_account").get("data") or []
        if not pages:
            raise PlatformError("The Facebook account manages no Page: create one (or be given a role on one), "
                                "then connect Meta again.", kind="permanent", provider="meta")
        page = next((p for p in pages if p.get("instagram_business_account")), pages[0])
        instagram = (page.get("instagram_business_account") or {}).get("id")
        return TokenSet(
            access_token=str(page["access_token"]), refresh_token=long_token,
            expires_at=(datetime.now(UTC) + timedelta(seconds=int(expires_in)))
            if isinstance(expires_in, int) else None,
            account_id=str(page["id"]), account_name=str(page.get("name") or ""), scopes=self.scopes,
            settings={"instagram_account_id": str(instagram) if instagram else None},
        )


def adapter(settings: Settings, provider: Provider) -> FacebookAdapter | InstagramAdapter:
    """The adapter for `facebook` or `instagram` (one Meta connection serves both)."""
    if provider == "instagram":
        return InstagramAdapter(graph_client(settings), container_wait_seconds=settings.meta_container_wait_seconds)
    if provider == "facebook":
        return FacebookAdapter(graph_client(settings))
    raise ValueError(f"shared.publishing.adapters.meta publishes to facebook and instagram, not {provider!r}")


def oauth(settings: Settings) -> MetaOAuth:
    """Facebook Login with the app of `META_APP_ID` / `META_APP_SECRET`."""
    if not settings.meta_app_id or settings.meta_app_secret is None:
        raise ConfigurationError("META_APP_ID and META_APP_SECRET are not set; Meta connections need the Facebook "
                                 "app's id and secret.")
    return MetaOAuth(graph=graph_client(settings), dialog_url=settings.meta_dialog_url, app_id=settings.meta_app_id,
                     app_secret=settings.meta_app_secret.get_secret_value(), scopes=tuple(settings.meta_scopes))
