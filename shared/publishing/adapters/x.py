"""X: posts and threads through `xdk` (X's official SDK), OAuth 2.0 with PKCE through a small httpx client.

Posting goes through `xdk.Client(base_url=…)`, one client per call (xdk writes the token into its session's
headers). xdk sends without a timeout and without retries; a `TimeoutAdapter` mounted on that session adds
the timeout and pins retries at zero, so a create is sent once.

The OAuth flow does not use xdk's `OAuth2PKCEAuth`: its refresh goes through requests-oauthlib, which refuses
plain-http token endpoints (the emulator) unless `OAUTHLIB_INSECURE_TRANSPORT` is set for the whole process,
and its code exchange sends without a timeout and turns every refusal into a bare `ValueError`, losing the
status needed to tell a revoked grant from an outage. The token endpoint is one form POST, so httpx does it.

X has no idempotency key (reference `publishing-apis.md` §3c). A create whose outcome is unknown is
reconciled by reading the account's own recent posts (`GET /2/users/{id}/tweets`) and matching the text
(links compared as links: X rewrites them to t.co). X refuses an exact duplicate with 403; that is taken as a
hint and checked the same way. A thread (`x_thread`) is posted part by part, each part a reply to the one
before; every accepted part is reported through `PostRequest.on_part` before the next is sent, so a later
attempt resumes after `PostRequest.posted_parts`.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import requests
import xdk

from shared.errors import ConfigurationError
from shared.publishing.adapters._support import (
    bounded_session,
    comparable_text,
    request_was_sent,
    retry_after_seconds,
    utc_now,
)
from shared.publishing.ports import (
    ConnectionProvider,
    Credentials,
    PlatformError,
    PostRequest,
    PostResult,
    Provider,
    TokenSet,
)
from shared.settings import Settings

SCOPES = ("tweet.read", "tweet.write", "users.read", "media.write", "offline.access")
TIMELINE_PAGE = 100
TIMELINE_PAGES = 3
"""At most 300 of the account's newest posts are read when reconciling (owned reads are billed)."""
RECONCILE_SLACK = timedelta(minutes=1)

Step = Literal["create", "read", "upload"]


class XAdapter:
    """Publishes posts and threads to the connected X account."""

    provider: Provider = "x"

    def __init__(self, settings: Settings) -> None:
        self.api_url = settings.x_api_url.rstrip("/")
        self.timeout = settings.publish_timeout_seconds

    def publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        texts = post_texts(post)
        client = self._client(credentials)
        parts = list(post.posted_parts)
        media_ids = self._upload(client, post) if not parts and post.media else []
        for index in range(len(parts), len(texts)):
            body: dict[str, Any] = {"text": texts[index]}
            if index == 0 and media_ids:
                body["media"] = {"media_ids": media_ids}
            if parts:
                body["reply"] = {"in_reply_to_tweet_id": parts[-1]}
            parts.append(self._create(client, credentials, texts[index], body, parts[-1] if parts else None))
            if post.on_part is not None:
                post.on_part(tuple(parts))
        return _result(parts)

    def reconcile(self, credentials: Credentials, post: PostRequest, since: datetime) -> PostResult | None:
        texts = post_texts(post)
        timeline = self._timeline(self._client(credentials), credentials.account_id, since - RECONCILE_SLACK)
        parts = list(post.posted_parts)
        for text in texts[len(parts):]:
            found = _find(timeline, text, parts[-1] if parts else None)
            if found is None:
                break
            parts.append(found)
        if len(parts) == len(texts):
            return _result(parts)
        if len(parts) > len(post.posted_parts) and post.on_part is not None:
            post.on_part(tuple(parts))
        return None

    def _client(self, credentials: Credentials) -> xdk.Client:
        client = xdk.Client(base_url=self.api_url, access_token=credentials.access_token)
        bounded_session(client.session, self.timeout)
        return client

    def _upload(self, client: xdk.Client, post: PostRequest) -> list[str]:
        """Upload the post's images (nothing is visible until a post uses them, so failures are retryable)."""
        media_ids = []
        for media in post.media[:4]:
            body = xdk.media.models.UploadRequest(media=base64.b64encode(media.data).decode(),
                                                  media_category="tweet_image")
            try:
                uploaded = client.media.upload(body=body)
            except requests.RequestException as error:
                raise _error(error, "upload") from error
            if uploaded.data is None or uploaded.data.id is None:
                raise PlatformError(f"X did not accept the image {media.asset_id}: {uploaded.errors}",
                                    kind="permanent", provider="x")
            media_ids.append(str(uploaded.data.id))
        return media_ids

    def _create(self, client: xdk.Client, credentials: Credentials, text: str, body: dict[str, Any],
                reply_to: str | None) -> str:
        """One `POST /2/tweets`; a duplicate-content refusal is answered by the post it duplicates."""
        try:
            created = client.posts.create(body=xdk.posts.models.CreateRequest.model_validate(body))
        except requests.RequestException as error:
            if _is_duplicate(error):
                timeline = self._timeline(client, credentials.account_id, utc_now() - timedelta(days=1))
                found = _find(timeline, text, reply_to)
                if found is not None:
                    return found
            raise _error(error, "create") from error
        if created.data is None or created.data.id is None:
            raise PlatformError(f"X refused the post: {_problems(created.errors)}", kind="permanent", provider="x")
        return str(created.data.id)

    def _timeline(self, client: xdk.Client, user_id: str, since: datetime) -> list[dict[str, Any]]:
        """The account's posts since `since`, newest first (id, text, the post each replies to)."""
        found: list[dict[str, Any]] = []
        try:
            pages = client.users.get_posts(id=user_id, max_results=TIMELINE_PAGE,
                                           start_time=since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                           post_fields=["created_at", "conversation_id"])
            for number, page in enumerate(pages):
                for item in page.data or []:
                    data = item.model_dump() if hasattr(item, "model_dump") else dict(item)
                    references = data.get("referenced_posts") or data.get("referenced_tweets") or []
                    replied = [ref.get("id") for ref in references if ref.get("type") == "replied_to"]
                    found.append({"id": str(data["id"]), "text": data.get("text") or "",
                                  "reply_to": str(replied[0]) if replied else None})
                if number + 1 >= TIMELINE_PAGES:
                    break
        except requests.RequestException as error:
            raise _error(error, "read") from error
        return found


def post_texts(post: PostRequest) -> list[str]:
    """The text of each part: a thread's posts in order, or the one text of any other channel."""
    content = post.content
    if isinstance(content.get("posts"), list):
        texts = [str(text) for text in content["posts"]]
    else:
        texts = [str(content.get("text") or content.get("caption") or content.get("body") or "")]
    if not texts or not all(text.strip() for text in texts):
        raise PlatformError("The X post has no text", kind="permanent", provider="x")
    return texts


def _find(timeline: list[dict[str, Any]], text: str, reply_to: str | None) -> str | None:
    """The oldest post of the timeline with this text that replies to `reply_to` (a thread's previous part)
    or, when the timeline does not say what a post replies to, to anything."""
    wanted = comparable_text(text)
    for item in reversed(timeline):
        if comparable_text(item["text"]) == wanted and item["reply_to"] in (None, reply_to):
            return str(item["id"])
    return None


def _result(parts: list[str]) -> PostResult:
    return PostResult(external_id=parts[0], url=f"https://x.com/i/web/status/{parts[0]}", published_at=utc_now(),
                      parts=tuple(parts))


def _problems(errors: Any) -> str:
    return "; ".join(str(getattr(problem, "detail", None) or getattr(problem, "title", None) or problem)
                     for problem in errors or []) or "no post id in the answer"


def _body(response: requests.Response | None) -> dict[str, Any]:
    if response is None:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(response: requests.Response) -> str:
    body = _body(response)
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    detail = body.get("detail") or (errors[0].get("message") or errors[0].get("detail") if errors else None)
    return str(detail or body.get("title") or response.reason or f"HTTP {response.status_code}")


def _is_duplicate(error: requests.RequestException) -> bool:
    response = error.response
    return response is not None and response.status_code == 403 and "duplicate" in _message(response).lower()


def _error(error: requests.RequestException, step: Step) -> PlatformError:
    """How the engine should treat a failed X call (ports.ErrorKind)."""
    response = error.response
    if response is None:
        if step == "create" and request_was_sent(error):
            return PlatformError(f"X did not answer the post in time ({type(error).__name__}); it may exist",
                                 kind="ambiguous", provider="x")
        return PlatformError(f"X could not be reached ({type(error).__name__})", kind="retryable", provider="x")
    status = response.status_code
    message = _message(response)
    if status == 429:
        return PlatformError(f"X rate limit: {message}", kind="retryable", provider="x", status=status,
                             retry_after_seconds=retry_after_seconds(response.headers,
                                                                     reset_header="x-rate-limit-reset"))
    if status == 401:
        return PlatformError(f"X refused the token: {message}", kind="reconnect", provider="x", status=status)
    if status >= 500:
        kind: Literal["ambiguous", "retryable"] = "ambiguous" if step == "create" else "retryable"
        return PlatformError(f"X failed: {message}", kind=kind, provider="x", status=status)
    return PlatformError(f"X refused the post: {message}", kind="permanent", provider="x", status=status)


class XOAuth:
    """OAuth 2.0 authorization code with PKCE (S256) for an X account; tokens live 2 hours."""

    provider: ConnectionProvider = "x"
    uses_pkce = True

    def __init__(self, settings: Settings) -> None:
        if not settings.x_client_id or settings.x_client_secret is None:
            raise ConfigurationError("Connecting X needs X_CLIENT_ID and X_CLIENT_SECRET (the app's OAuth 2.0 "
                                     "client credentials from the X developer portal)")
        self.client_id = settings.x_client_id
        self.client_secret = settings.x_client_secret.get_secret_value()
        self.authorize_url = settings.x_authorize_url
        self.api_url = settings.x_api_url.rstrip("/")
        self.timeout = settings.publish_timeout_seconds

    def authorization_url(self, *, state: str, redirect_uri: str, code_challenge: str | None) -> str:
        if not code_challenge:
            raise ValueError("X requires PKCE: pass the S256 code_challenge of the connection's verifier")
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                 "scope": " ".join(SCOPES), "state": state, "code_challenge": code_challenge,
                 "code_challenge_method": "S256"}
        return f"{self.authorize_url}?{urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None) -> TokenSet:
        if not code_verifier:
            raise ValueError("X requires PKCE: pass the connection's code_verifier")
        return self._tokens({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                             "code_verifier": code_verifier}, refreshing=False)

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._tokens({"grant_type": "refresh_token", "refresh_token": refresh_token}, refreshing=True)

    def _tokens(self, form: dict[str, str], *, refreshing: bool) -> TokenSet:
        try:
            response = httpx.post(f"{self.api_url}/2/oauth2/token", data=form,
                                  auth=(self.client_id, self.client_secret), timeout=self.timeout)
        except httpx.HTTPError as error:
            raise PlatformError(f"X's token endpoint could not be reached ({type(error).__name__})",
                                kind="retryable", provider="x") from error
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code == 429 or response.status_code >= 500:
            raise PlatformError(f"X's token endpoint failed (HTTP {response.status_code})", kind="retryable",
                                provider="x", status=response.status_code,
                                retry_after_seconds=retry_after_seconds(response.headers,
                                                                        reset_header="x-rate-limit-reset"))
        if response.status_code != 200 or not body.get("access_token"):
            reason = body.get("error_description") or body.get("error") or f"HTTP {response.status_code}"
            raise PlatformError(f"X refused the {'refresh' if refreshing else 'authorization code'}: {reason}",
                                kind="reconnect" if refreshing else "permanent", provider="x",
                                status=response.status_code)
        access_token = str(body["access_token"])
        user = self._me(access_token)
        expires_in = body.get("expires_in")
        return TokenSet(access_token=access_token, refresh_token=body.get("refresh_token"),
                        expires_at=utc_now() + timedelta(seconds=int(expires_in)) if expires_in else None,
                        account_id=str(user["id"]), account_name=f"@{user.get('username', '')}",
                        scopes=tuple(str(body.get("scope", "")).split()))

    def _me(self, access_token: str) -> dict[str, Any]:
        """The account the token acts for (`GET /2/users/me` through xdk)."""
        client = xdk.Client(base_url=self.api_url, access_token=access_token)
        bounded_session(client.session, self.timeout)
        try:
            me = client.users.get_me()
        except requests.RequestException as error:
            raise _error(error, "read") from error
        if me.data is None:
            raise PlatformError("X did not say which account the token acts for", kind="retryable", provider="x")
        return me.data.model_dump()


def adapter(settings: Settings, provider: Provider) -> XAdapter:
    """The X adapter (`provider` is always `x`)."""
    return XAdapter(settings)


def oauth(settings: Settings) -> XOAuth:
    """X's OAuth 2.0 flow."""
    return XOAuth(settings)
