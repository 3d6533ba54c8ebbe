"""The LinkedIn adapter and OAuth flow against the LinkedIn emulator served on a local port."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import flask
import httpx
import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.linkedin import ORGANIZATION_URN, create_app
from infra.local.serve import serve_in_thread
from shared.publishing.adapters._support import utc_now
from shared.publishing.adapters.linkedin import LinkedInAdapter, LinkedInOAuth
from shared.publishing.ports import Credentials, Media, PlatformError, PostRequest, TokenSet
from shared.settings import Settings
from tests.integration.publishing_settings import publishing_settings

REDIRECT_URI = "http://127.0.0.1:9/api/v1/channels/linkedin/callback"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


@pytest.fixture(scope="module")
def linkedin_url(fresh_database_dsn: str) -> Iterator[str]:
    """The emulator mounted under `/linkedin`, as the local stack does; yields its base URL."""
    app = create_app(EmulatorConfig(database_url=fresh_database_dsn))
    server = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/linkedin": app}))
    try:
        yield f"{server.url}/linkedin"
    finally:
        server.stop()


def _settings(url: str, **overrides: str) -> Settings:
    return publishing_settings(LINKEDIN_API_URL=url, LINKEDIN_OAUTH_URL=f"{url}/oauth/v2",
                               LINKEDIN_CLIENT_ID="muse-local-linkedin", LINKEDIN_CLIENT_SECRET="local-linkedin-secret",
                               **overrides)


@pytest.fixture
def settings(linkedin_url: str) -> Iterator[Settings]:
    yield _settings(linkedin_url)
    httpx.delete(f"{linkedin_url}/__emu/faults")


def _connect(settings: Settings) -> TokenSet:
    """Authorize (the emulator approves when followed), then exchange the code inside the 'callback'."""
    oauth = LinkedInOAuth(settings)
    state = secrets.token_urlsafe(16)
    approved = httpx.get(oauth.authorization_url(state=state, redirect_uri=REDIRECT_URI, code_challenge=None))
    assert approved.status_code == 302
    query = parse_qs(urlsplit(approved.headers["location"]).query)
    assert query["state"] == [state] and approved.headers["location"].startswith(REDIRECT_URI)
    return oauth.exchange_code(code=query["code"][0], redirect_uri=REDIRECT_URI, code_verifier=None)


def _credentials(tokens: TokenSet) -> Credentials:
    return Credentials(connection_id=str(uuid.uuid4()), workspace_id=str(uuid.uuid4()), provider="linkedin",
                       account_id=tokens.account_id, access_token=tokens.access_token)


def _post(text: str, media: tuple[Media, ...] = ()) -> PostRequest:
    return PostRequest(publication_id=str(uuid.uuid4()), provider="linkedin", channel="linkedin_post",
                       content={"text": text}, content_hash=hashlib.sha256(text.encode()).hexdigest(), media=media)


def _posts(url: str, tag: str) -> list[dict[str, Any]]:
    return [post for post in httpx.get(f"{url}/__emu/posts").json()["posts"] if tag in post["commentary"]]


def _fault(url: str, **fault: Any) -> None:
    httpx.post(f"{url}/__emu/faults", json=fault).raise_for_status()


def test_connect_resolves_the_page_and_an_image_post_is_published(settings: Settings, linkedin_url: str) -> None:
    tokens = _connect(settings)
    assert tokens.account_id == ORGANIZATION_URN and tokens.account_name == "Muse Local Pvt Ltd"
    assert tokens.refresh_token and "w_organization_social" in tokens.scopes
    assert tokens.expires_at is not None and tokens.expires_at - utc_now() > timedelta(days=59)
    tag = uuid.uuid4().hex[:8]
    image = Media(asset_id="asset-1", content_type="image/png", data=PNG, url="", alt_text="Diya banner")
    result = LinkedInAdapter(settings).publish(_credentials(tokens),
                                               _post(f"Diwali sale (50% off) #festive {tag}", (image,)))
    [stored] = _posts(linkedin_url, tag)
    assert stored["id"] == result.external_id and stored["author"] == ORGANIZATION_URN
    assert stored["commentary"] == f"Diwali sale \\(50% off\\) \\#festive {tag}"
    assert stored["content"]["media"]["altText"] == "Diya banner"
    assert result.url == f"https://www.linkedin.com/feed/update/{result.external_id}"


def test_a_timeout_after_create_is_ambiguous_and_reconcile_finds_the_one_post(settings: Settings,
                                                                             linkedin_url: str) -> None:
    credentials = _credentials(_connect(settings))
    tag = uuid.uuid4().hex[:8]
    post = _post(f"Monsoon collection is here [{tag}]")
    started = utc_now()
    _fault(linkedin_url, route="POST /rest/posts", mode="timeout_after_create", hold_seconds=2.5)
    with pytest.raises(PlatformError) as unknown:
        LinkedInAdapter(settings).publish(credentials, post)
    assert unknown.value.kind == "ambiguous"
    found = LinkedInAdapter(settings).reconcile(credentials, post, started)
    [stored] = _posts(linkedin_url, tag)
    assert found is not None and found.external_id == stored["id"]


def test_a_repeated_create_is_answered_by_the_post_it_duplicates(settings: Settings, linkedin_url: str) -> None:
    credentials = _credentials(_connect(settings))
    tag = uuid.uuid4().hex[:8]
    first = LinkedInAdapter(settings).publish(credentials, _post(f"Same copy twice {tag}"))
    again = LinkedInAdapter(settings).publish(credentials, _post(f"Same copy twice {tag}"))
    assert again.external_id == first.external_id
    assert len(_posts(linkedin_url, tag)) == 1


def test_429_is_retryable_with_retry_after_and_nothing_is_posted(settings: Settings, linkedin_url: str) -> None:
    credentials = _credentials(_connect(settings))
    tag = uuid.uuid4().hex[:8]
    _fault(linkedin_url, route="POST /rest/posts", mode="429", retry_after_seconds=42)
    with pytest.raises(PlatformError) as throttled:
        LinkedInAdapter(settings).publish(credentials, _post(f"Throttled {tag}"))
    assert throttled.value.kind == "retryable" and throttled.value.retry_after_seconds == 42
    assert _posts(linkedin_url, tag) == []


def test_an_expired_token_needs_reconnect_and_a_refresh_brings_it_back(settings: Settings,
                                                                       linkedin_url: str) -> None:
    tokens = _connect(settings)
    _fault(linkedin_url, mode="token_expired")
    with pytest.raises(PlatformError) as expired:
        LinkedInAdapter(settings).publish(_credentials(tokens), _post(f"Expired {uuid.uuid4().hex}"))
    assert expired.value.kind == "reconnect" and "expired" in expired.value.message
    assert tokens.refresh_token is not None
    refreshed = LinkedInOAuth(settings).refresh(tokens.refresh_token)
    assert refreshed.account_id == ORGANIZATION_URN and refreshed.access_token != tokens.access_token
    tag = uuid.uuid4().hex[:8]
    LinkedInAdapter(settings).publish(_credentials(refreshed), _post(f"Back again {tag}"))
    assert len(_posts(linkedin_url, tag)) == 1


def test_a_revoked_token_cannot_be_refreshed(settings: Settings, linkedin_url: str) -> None:
    tokens = _connect(settings)
    _fault(linkedin_url, mode="token_revoked")
    with pytest.raises(PlatformError) as revoked:
        LinkedInAdapter(settings).publish(_credentials(tokens), _post(f"Revoked {uuid.uuid4().hex}"))
    assert revoked.value.kind == "reconnect" and "revoked" in revoked.value.message
    assert tokens.refresh_token is not None
    with pytest.raises(PlatformError) as refused:
        LinkedInOAuth(settings).refresh(tokens.refresh_token)
    assert refused.value.kind == "reconnect"


def test_a_sunset_version_is_a_permanent_refusal_naming_it(settings: Settings, linkedin_url: str) -> None:
    credentials = _credentials(_connect(settings))
    with pytest.raises(PlatformError) as sunset:
        LinkedInAdapter(_settings(linkedin_url, LINKEDIN_VERSION="202301")).publish(credentials, _post("Old API"))
    assert sunset.value.kind == "permanent" and "202301 is not active" in sunset.value.message


def test_a_500_after_create_is_ambiguous_and_reconciled_to_the_post(settings: Settings, linkedin_url: str) -> None:
    credentials = _credentials(_connect(settings))
    tag = uuid.uuid4().hex[:8]
    post = _post(f"Server hiccup {tag}")
    started = utc_now()
    _fault(linkedin_url, route="POST /rest/posts", mode="500_after_create")
    with pytest.raises(PlatformError) as failed:
        LinkedInAdapter(settings).publish(credentials, post)
    assert failed.value.kind == "ambiguous" and failed.value.status == 500
    found = LinkedInAdapter(settings).reconcile(credentials, post, started)
    [stored] = _posts(linkedin_url, tag)
    assert found is not None and found.external_id == stored["id"]
