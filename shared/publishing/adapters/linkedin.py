"""LinkedIn organization pages: the versioned Posts API and the 3-legged OAuth flow, over a small httpx client.

Why not `linkedin-api-client` (LinkedIn's Python SDK, 0.3.0, beta, last commit 2023-11): its hosts are module
constants (`VERSIONED_BASE_URL`, `OAUTH_BASE_URL`, the latter imported by name into a second module), so
pointing one client at an emulator repoints every LinkedIn call in the process; its session sends without a
timeout, so a stalled create would hold a publish step until the platform's own limit; and it does not raise on
4xx, so its only help here, Rest.li query encoding, is one `quote` of a URN. This client sends exactly what the
SDK sends (reference `publishing-apis.md` §2b: `LinkedIn-Version`, `X-Restli-Protocol-Version: 2.0.0`,
`X-RestLi-Method`), with one timeout per call and an httpx transport that never retries.

LinkedIn has no idempotency key. A create it refuses with 422 `DUPLICATE_POST` names the post it duplicates;
that URN is read back (LinkedIn can name "ghost" URNs that 404) and, when it exists with the same commentary,
is the result. A create whose outcome is unknown is reconciled with the author finder (`q=author`, which needs
`r_organization_social`) by commentary. Commentary is LinkedIn's "little text": reserved characters are
escaped, or the post would be cut at the first of them.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx

from shared.errors import ConfigurationError
from shared.publishing.adapters._support import comparable_text, retry_after_seconds, utc_now
from shared.publishing.ports import (
    ConnectionProvider,
    Credentials,
    Media,
    PlatformError,
    PostRequest,
    PostResult,
    Provider,
    TokenSet,
)
from shared.settings import Settings

SCOPES = ("w_organization_social", "r_organization_social", "rw_organization_admin")
RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
DUPLICATE_URN = re.compile(r"urn:li:(?:share|ugcPost):\d+")
FINDER_COUNT = 50
IMAGE_WAIT_SECONDS = 20.0
IMAGE_POLL_SECONDS = 0.5
RECONCILE_SLACK = timedelta(minutes=1)

Step = Literal["create", "read", "prepare", "token"]


def little_text(text: str) -> str:
    """`text` as LinkedIn's little-text commentary: every reserved character escaped with a backslash."""
    return RESERVED.sub(r"\\\1", text)


def post_text(post: PostRequest) -> str:
    """The post's copy (`linkedin_post.text`; other channels' main text as a fallback)."""
    content = post.content
    text = content.get("text") or content.get("caption") or content.get("body") or ""
    if isinstance(content.get("posts"), list):
        text = "\n\n".join(str(part) for part in content["posts"])
    if not str(text).strip():
        raise PlatformError("The LinkedIn post has no text", kind="permanent", provider="linkedin")
    return str(text)


class _Rest:
    """One access token's calls to the versioned REST API."""

    def __init__(self, rest_url: str, version: str, timeout: float, access_token: str) -> None:
        self.http = httpx.Client(
            base_url=rest_url, timeout=timeout, transport=httpx.HTTPTransport(retries=0),
            headers={"Authorization": f"Bearer {access_token}", "LinkedIn-Version": version,
                     "X-Restli-Protocol-Version": "2.0.0"})

    def __enter__(self) -> _Rest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, url: str, step: Step, *, restli_method: str | None = None,
             **kwargs: Any) -> httpx.Response:
        """One request; transport failures become `PlatformError`s of the kind `step` implies."""
        headers = kwargs.pop("headers", {}) | ({"X-RestLi-Method": restli_method} if restli_method else {})
        try:
            return self.http.request(method, url, headers=headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise PlatformError(f"LinkedIn could not be reached ({type(error).__name__})", kind="retryable",
                                provider="linkedin") from error
        except httpx.TransportError as error:
            if step == "create":
                raise PlatformError(f"LinkedIn did not answer the post in time ({type(error).__name__}); it may "
                                    "exist", kind="ambiguous", provider="linkedin") from error
            raise PlatformError(f"LinkedIn did not answer ({type(error).__name__})", kind="retryable",
                                provider="linkedin") from error


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(response: httpx.Response, step: Step) -> PlatformError:
    """How the engine should treat LinkedIn's refusal (ports.ErrorKind)."""
    status = response.status_code
    body = _body(response)
    message = str(body.get("message") or body.get("error_description") or body.get("error")
                  or response.reason_phrase or f"HTTP {status}")
    if status == 429:
        return PlatformError(f"LinkedIn throttled the call: {message}", kind="retryable", provider="linkedin",
                             status=status, retry_after_seconds=retry_after_seconds(response.headers))
    if status == 401:
        return PlatformError(f"LinkedIn refused the token: {message}", kind="reconnect", provider="linkedin",
                             status=status)
    if status >= 500:
        kind: Literal["ambiguous", "retryable"] = "ambiguous" if step == "create" else "retryable"
        return PlatformError(f"LinkedIn failed: {message}", kind=kind, provider="linkedin", status=status)
    return PlatformError(f"LinkedIn refused the call: {message}", kind="permanent", provider="linkedin",
                         status=status)


class LinkedInAdapter:
    """Publishes text and image posts as the connected organization page."""

    provider: Provider = "linkedin"

    def __init__(self, settings: Settings) -> None:
        self.rest_url = settings.linkedin_api_url.rstrip("/") + "/rest"
        self.version = settings.linkedin_version
        self.timeout = settings.publish_timeout_seconds

    def _rest(self, credentials: Credentials) -> _Rest:
        return _Rest(self.rest_url, self.version, self.timeout, credentials.access_token)

    def publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        commentary = little_text(post_text(post))
        with self._rest(credentials) as rest:
            images = [(self._upload(rest, credentials.account_id, media), media.alt_text) for media in post.media]
            body: dict[str, Any] = {
                "author": credentials.account_id, "commentary": commentary, "visibility": "PUBLIC",
                "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                                 "thirdPartyDistributionChannels": []},
                "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False,
            }
            if len(images) == 1:
                body["content"] = {"media": {"id": images[0][0], "altText": images[0][1]}}
            elif images:
                body["content"] = {"multiImage": {"images": [{"id": urn, "altText": alt} for urn, alt in images]}}
            response = rest.call("POST", "/posts", "create", restli_method="CREATE", json=body)
            if response.status_code == 201 and response.headers.get("x-restli-id"):
                return _result(response.headers["x-restli-id"])
            duplicate = _duplicate_of(response)
            if duplicate is not None:
                return self._verified(rest, duplicate, commentary)
            raise _error(response, "create")

    def reconcile(self, credentials: Credentials, post: PostRequest, since: datetime) -> PostResult | None:
        commentary = comparable_text(little_text(post_text(post)))
        after_ms = int((since - RECONCILE_SLACK).timestamp() * 1000)
        query = urlencode({"q": "author", "count": FINDER_COUNT, "sortBy": "LAST_MODIFIED"})
        with self._rest(credentials) as rest:
            response = rest.call("GET", f"/posts?author={quote(credentials.account_id, safe='')}&{query}", "read",
                                 restli_method="FINDER")
        if response.status_code == 403 and credentials.account_id.startswith("urn:li:person:"):
            raise PlatformError("LinkedIn does not list a member's posts without r_member_social: check the "
                                "profile before posting again", kind="ambiguous", provider="linkedin", status=403)
        if response.status_code != 200:
            raise _error(response, "read")
        matches = [element for element in _body(response).get("elements") or []
                   if comparable_text(str(element.get("commentary", ""))) == commentary
                   and int(element.get("createdAt") or 0) >= after_ms]
        if not matches:
            return None
        oldest = min(matches, key=lambda element: int(element.get("createdAt") or 0))
        return _result(str(oldest["id"]), int(oldest.get("publishedAt") or oldest.get("createdAt") or 0))

    def _upload(self, rest: _Rest, owner: str, media: Media) -> str:
        """Register, upload and wait for one image; nothing is visible until a post uses it, so every
        failure here is retryable (or permanent when LinkedIn refuses the image)."""
        response = rest.call("POST", "/images?action=initializeUpload", "prepare", restli_method="ACTION",
                             json={"initializeUploadRequest": {"owner": owner}})
        if response.status_code != 200:
            raise _error(response, "prepare")
        value = _body(response).get("value") or {}
        urn, upload_url = str(value.get("image", "")), str(value.get("uploadUrl", ""))
        uploaded = rest.call("PUT", upload_url, "prepare", content=media.data,
                             headers={"Content-Type": media.content_type})
        if uploaded.status_code not in (200, 201):
            raise _error(uploaded, "prepare")
        deadline = time.monotonic() + IMAGE_WAIT_SECONDS
        while True:
            status = rest.call("GET", f"/images/{quote(urn, safe='')}", "prepare")
            if status.status_code != 200:
                raise _error(status, "prepare")
            state = _body(status).get("status")
            if state == "AVAILABLE":
                return urn
            if state == "PROCESSING_FAILED":
                raise PlatformError(f"LinkedIn could not process the image {media.asset_id}", kind="permanent",
                                    provider="linkedin")
            if time.monotonic() > deadline:
                raise PlatformError(f"LinkedIn is still processing the image {media.asset_id}", kind="retryable",
                                    provider="linkedin", retry_after_seconds=30)
            time.sleep(IMAGE_POLL_SECONDS)

    def _verified(self, rest: _Rest, urn: str, commentary: str) -> PostResult:
        """The post a 422 `DUPLICATE_POST` names, when it exists with this commentary."""
        response = rest.call("GET", f"/posts/{quote(urn, safe='')}", "read")
        if response.status_code == 200 and comparable_text(str(_body(response).get("commentary", ""))) == \
                comparable_text(commentary):
            return _result(urn, int(_body(response).get("publishedAt") or 0))
        raise PlatformError(f"LinkedIn calls the post a duplicate of {urn}, which it cannot show "
                            f"(HTTP {response.status_code})", kind="ambiguous", provider="linkedin",
                            status=response.status_code)


def _duplicate_of(response: httpx.Response) -> str | None:
    """The URN a 422 `DUPLICATE_POST` names."""
    if response.status_code != 422:
        return None
    body = _body(response)
    errors = ((body.get("errorDetails") or {}).get("inputErrors")) or []
    if not any(error.get("code") == "DUPLICATE_POST" for error in errors if isinstance(error, dict)):
        return None
    found = DUPLICATE_URN.search(str(body.get("message", "")))
    return found.group() if found else None


def _result(urn: str, published_ms: int = 0) -> PostResult:
    published_at = datetime.fromtimestamp(published_ms / 1000, UTC) if published_ms else utc_now()
    return PostResult(external_id=urn, url=f"https://www.linkedin.com/feed/update/{urn}", published_at=published_at)


class LinkedInOAuth:
    """3-legged OAuth (confidential client, no PKCE for web apps) resolving the page the member administers."""

    provider: ConnectionProvider = "linkedin"
    uses_pkce = False

    def __init__(self, settings: Settings) -> None:
        if not settings.linkedin_client_id or settings.linkedin_client_secret is None:
            raise ConfigurationError("Connecting LinkedIn needs LINKEDIN_CLIENT_ID and LINKEDIN_CLIENT_SECRET (the "
                                     "app's Auth tab in the LinkedIn developer portal)")
        self.client_id = settings.linkedin_client_id
        self.client_secret = settings.linkedin_client_secret.get_secret_value()
        self.oauth_url = settings.linkedin_oauth_url.rstrip("/")
        self.adapter = LinkedInAdapter(settings)

    def authorization_url(self, *, state: str, redirect_uri: str, code_challenge: str | None) -> str:
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                 "state": state, "scope": " ".join(SCOPES)}
        return f"{self.oauth_url}/authorization?{urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str | None) -> TokenSet:
        return self._tokens({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
                            refreshing=False)

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._tokens({"grant_type": "refresh_token", "refresh_token": refresh_token}, refreshing=True)

    def _tokens(self, form: dict[str, str], *, refreshing: bool) -> TokenSet:
        try:
            response = httpx.post(f"{self.oauth_url}/accessToken", timeout=self.adapter.timeout,
                                  data=form | {"client_id": self.client_id, "client_secret": self.client_secret})
        except httpx.HTTPError as error:
            raise PlatformError(f"LinkedIn's token endpoint could not be reached ({type(error).__name__})",
                                kind="retryable", provider="linkedin") from error
        body = _body(response)
        if response.status_code == 429 or response.status_code >= 500:
            raise _error(response, "token")
        if response.status_code != 200 or not body.get("access_token"):
            reason = body.get("error_description") or body.get("error") or f"HTTP {response.status_code}"
            raise PlatformError(f"LinkedIn refused the {'refresh' if refreshing else 'authorization code'}: "
                                f"{reason}", kind="reconnect" if refreshing else "permanent", provider="linkedin",
                                status=response.status_code)
        access_token = str(body["access_token"])
        organization, name = self._organization(access_token)
        now = utc_now()
        settings: dict[str, Any] = {}
        if body.get("refresh_token_expires_in"):
            settings["refresh_token_expires_at"] = (now + timedelta(seconds=int(body["refresh_token_expires_in"]))
                                                    ).isoformat()
        return TokenSet(access_token=access_token, refresh_token=body.get("refresh_token"),
                        expires_at=now + timedelta(seconds=int(body["expires_in"])) if body.get("expires_in") else None,
                        account_id=organization, account_name=name,
                        scopes=tuple(str(body.get("scope", "")).replace(",", " ").split()), settings=settings)

    def _organization(self, access_token: str) -> tuple[str, str]:
        """The first page the member administers, and its name."""
        with _Rest(self.adapter.rest_url, self.adapter.version, self.adapter.timeout, access_token) as rest:
            acls = rest.call("GET", "/organizationAcls?q=roleAssignee&role=ADMINISTRATOR&state=APPROVED", "read",
                             restli_method="FINDER")
            if acls.status_code != 200:
                raise _error(acls, "read")
            pages = [str(element["organization"]) for element in _body(acls).get("elements") or []
                     if element.get("organization")]
            if not pages:
                raise PlatformError("This LinkedIn member administers no organization page: connect with a page "
                                    "administrator's account", kind="permanent", provider="linkedin")
            organization = rest.call("GET", f"/organizations/{pages[0].rsplit(':', 1)[-1]}", "read")
        name = str(_body(organization).get("localizedName") or pages[0]) if organization.status_code == 200 \
            else pages[0]
        return pages[0], name


def adapter(settings: Settings, provider: Provider) -> LinkedInAdapter:
    """The LinkedIn adapter (`provider` is always `linkedin`)."""
    return LinkedInAdapter(settings)


def oauth(settings: Settings) -> LinkedInOAuth:
    """LinkedIn's OAuth 2.0 flow."""
    return LinkedInOAuth(settings)
