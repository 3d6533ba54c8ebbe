"""The X adapter (xdk) and OAuth flow against the X emulator served on a local port."""

from __future__ import annotations

import base64
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
from infra.local.emulators.x import USER, create_app
from infra.local.serve import serve_in_thread
from shared.publishing.adapters._support import utc_now
from shared.publishing.adapters.x import XAdapter, XOAuth
from shared.publishing.ports import Credentials, PlatformError, PostRequest, TokenSet
from shared.settings import Settings
from tests.integration.publishing_settings import publishing_settings

REDIRECT_URI = "http://127.0.0.1:9/api/v1/channels/x/callback"


@pytest.fixture(scope="module")
def x_url(fresh_database_dsn: str) -> Iterator[str]:
    """The emulator mounted under `/x`, as the local stack does; yields its base URL."""
    server = serve_in_thread(DispatcherMiddleware(flask.Flask("root"),
                                                  {"/x": create_app(EmulatorConfig(database_url=fresh_database_dsn))}))
    try:
        yield f"{server.url}/x"
    finally:
        server.stop()


@pytest.fixture
def settings(x_url: str) -> Iterator[Settings]:
    yield publishing_settings(X_API_URL=x_url, X_AUTHORIZE_URL=f"{x_url}/i/oauth2/authorize",
                              X_CLIENT_ID="muse-local-x", X_CLIENT_SECRET="local-x-secret")
    httpx.delete(f"{x_url}/__emu/faults")


def _connect(settings: Settings) -> TokenSet:
    """Authorize (the emulator approves when followed), then exchange the code with the PKCE verifier."""
    oauth = XOAuth(settings)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    state = secrets.token_urlsafe(16)
    approved = httpx.get(oauth.authorization_url(state=state, redirect_uri=REDIRECT_URI, code_challenge=challenge))
    assert approved.status_code == 302
    location = urlsplit(approved.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == [state]
    return oauth.exchange_code(code=query["code"][0], redirect_uri=REDIRECT_URI, code_verifier=verifier)


def _credentials(tokens: TokenSet) -> Credentials:
    return Credentials(connection_id=str(uuid.uuid4()), workspace_id=str(uuid.uuid4()), provider="x",
                       account_id=tokens.account_id, access_token=tokens.access_token)


def _post(content: dict[str, Any], **fields: Any) -> PostRequest:
    return PostRequest(publication_id=str(uuid.uuid4()), provider="x", channel="x_thread", content=content,
                       content_hash=hashlib.sha256(repr(content).encode()).hexdigest(), **fields)


def _posts(x_url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{x_url}/__emu/posts").json()["posts"])


def _fault(x_url: str, **fault: Any) -> None:
    httpx.post(f"{x_url}/__emu/faults", json=fault).raise_for_status()


def test_connect_resolves_the_account_and_a_post_is_published(settings: Settings, x_url: str) -> None:
    tokens = _connect(settings)
    assert tokens.account_id == USER["id"] and tokens.account_name == "@muse_local"
    assert tokens.refresh_token and "tweet.write" in tokens.scopes
    assert tokens.expires_at is not None and tokens.expires_at - utc_now() > timedelta(minutes=110)
    text = f"Diwali offers are live {uuid.uuid4().hex[:6]} https://muse.example/diwali?utm=x"
    result = XAdapter(settings).publish(_credentials(tokens), _post({"posts": [text]}))
    stored = [post for post in _posts(x_url) if post["id"] == result.external_id]
    assert len(stored) == 1 and stored[0]["author_id"] == USER["id"]
    assert "https://t.co/" in stored[0]["text"] and result.parts == (result.external_id,)
    assert result.url == f"https://x.com/i/web/status/{result.external_id}"


def test_a_wrong_verifier_or_a_replayed_code_is_refused(settings: Settings) -> None:
    oauth = XOAuth(settings)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"the-real-verifier").digest()).decode().rstrip("=")
    location = httpx.get(oauth.authorization_url(state="s1", redirect_uri=REDIRECT_URI,
                                                 code_challenge=challenge)).headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    with pytest.raises(PlatformError) as wrong:
        oauth.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier="another-verifier")
    assert wrong.value.kind == "permanent" and "code verifier" in wrong.value.message
    with pytest.raises(PlatformError) as replayed:
        oauth.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier="the-real-verifier")
    assert replayed.value.kind == "permanent"


def test_a_thread_is_posted_in_order_and_a_retry_resumes_after_the_saved_parts(settings: Settings,
                                                                               x_url: str) -> None:
    credentials = _credentials(_connect(settings))
    tag = uuid.uuid4().hex[:6]
    texts = [f"1/3 monsoon sale {tag}", f"2/3 free shipping {tag}", f"3/3 ends Sunday {tag}"]
    earlier = XAdapter(settings).publish(credentials, _post({"posts": texts[:1]}))
    saved: list[tuple[str, ...]] = []
    result = XAdapter(settings).publish(credentials, _post({"posts": texts}, posted_parts=(earlier.external_id,),
                                                           on_part=saved.append))
    assert result.external_id == earlier.external_id and len(result.parts) == 3
    assert saved == [result.parts[:2], result.parts]
    mine = [post for post in _posts(x_url) if tag in post["text"]]
    assert [post["text"] for post in mine] == texts
    assert [post.get("referenced_posts", [{}])[0].get("id") for post in mine[1:]] == list(result.parts[:2])


def test_a_timeout_after_create_is_ambiguous_and_reconcile_finds_the_one_post(settings: Settings,
                                                                             x_url: str) -> None:
    credentials = _credentials(_connect(settings))
    tag = uuid.uuid4().hex[:6]
    post = _post({"posts": [f"Flat 20% off for Pongal {tag}: https://muse.example/pongal & more"]})
    started = utc_now()
    _fault(x_url, route="POST /2/tweets", mode="timeout_after_create", hold_seconds=2.5)
    with pytest.raises(PlatformError) as unknown:
        XAdapter(settings).publish(credentials, post)
    assert unknown.value.kind == "ambiguous"
    found = XAdapter(settings).reconcile(credentials, post, started)
    stored = [p for p in _posts(x_url) if tag in p["text"]]
    assert len(stored) == 1
    assert found is not None and found.external_id == stored[0]["id"]


def test_a_thread_cut_by_a_timeout_is_reconciled_part_by_part_and_resumed(settings: Settings, x_url: str) -> None:
    credentials = _credentials(_connect(settings))
    tag = uuid.uuid4().hex[:6]
    texts = [f"1/2 new arrivals {tag}", f"2/2 shop now {tag}"]
    saved: list[tuple[str, ...]] = []
    started = utc_now()
    _fault(x_url, route="POST /2/tweets", mode="timeout_after_create", hold_seconds=2.5)
    with pytest.raises(PlatformError) as unknown:
        XAdapter(settings).publish(credentials, _post({"posts": texts}, on_part=saved.append))
    assert unknown.value.kind == "ambiguous" and saved == []
    assert XAdapter(settings).reconcile(credentials, _post({"posts": texts}, on_part=saved.append), started) is None
    assert len(saved) == 1 and len(saved[0]) == 1
    result = XAdapter(settings).publish(credentials, _post({"posts": texts}, posted_parts=saved[0]))
    assert result.parts[0] == saved[0][0]
    assert [post["id"] for post in _posts(x_url) if tag in post["text"]] == list(result.parts)


def test_429_is_retryable_after_the_reset_and_nothing_is_posted(settings: Settings, x_url: str) -> None:
    credentials = _credentials(_connect(settings))
    before = len(_posts(x_url))
    _fault(x_url, route="POST /2/tweets", mode="429", retry_after_seconds=42)
    with pytest.raises(PlatformError) as throttled:
        XAdapter(settings).publish(credentials, _post({"posts": [f"Rate me {uuid.uuid4().hex}"]}))
    assert throttled.value.kind == "retryable" and throttled.value.status == 429
    assert throttled.value.retry_after_seconds is not None and 40 <= throttled.value.retry_after_seconds <= 42
    assert len(_posts(x_url)) == before


def test_a_duplicate_refusal_is_answered_by_the_post_it_duplicates(settings: Settings, x_url: str) -> None:
    credentials = _credentials(_connect(settings))
    text = f"Same words twice {uuid.uuid4().hex[:6]}"
    first = XAdapter(settings).publish(credentials, _post({"posts": [text]}))
    again = XAdapter(settings).publish(credentials, _post({"posts": [text]}))
    assert again.external_id == first.external_id
    assert len([post for post in _posts(x_url) if post["text"] == text]) == 1


def test_an_expired_token_needs_reconnect_and_a_refresh_brings_it_back(settings: Settings, x_url: str) -> None:
    tokens = _connect(settings)
    _fault(x_url, mode="token_expired")
    with pytest.raises(PlatformError) as expired:
        XAdapter(settings).publish(_credentials(tokens), _post({"posts": [f"Expired {uuid.uuid4().hex}"]}))
    assert expired.value.kind == "reconnect" and expired.value.status == 401
    assert tokens.refresh_token is not None
    refreshed = XOAuth(settings).refresh(tokens.refresh_token)
    assert refreshed.account_id == USER["id"] and refreshed.refresh_token != tokens.refresh_token
    result = XAdapter(settings).publish(_credentials(refreshed), _post({"posts": [f"Back {uuid.uuid4().hex}"]}))
    assert result.external_id in {post["id"] for post in _posts(x_url)}


def test_a_revoked_token_cannot_be_refreshed(settings: Settings, x_url: str) -> None:
    tokens = _connect(settings)
    _fault(x_url, mode="token_revoked")
    with pytest.raises(PlatformError) as revoked:
        XAdapter(settings).publish(_credentials(tokens), _post({"posts": [f"Revoked {uuid.uuid4().hex}"]}))
    assert revoked.value.kind == "reconnect"
    assert tokens.refresh_token is not None
    with pytest.raises(PlatformError) as refused:
        XOAuth(settings).refresh(tokens.refresh_token)
    assert refused.value.kind == "reconnect" and "invalid" in refused.value.message


def test_a_restarted_emulator_keeps_tokens_and_posts(settings: Settings, x_url: str,
                                                     fresh_database_dsn: str) -> None:
    tokens = _connect(settings)
    posted = XAdapter(settings).publish(_credentials(tokens), _post({"posts": [f"Before {uuid.uuid4().hex}"]}))
    restarted = serve_in_thread(DispatcherMiddleware(
        flask.Flask("root"), {"/x": create_app(EmulatorConfig(database_url=fresh_database_dsn))}))
    try:
        url = f"{restarted.url}/x"
        again = publishing_settings(X_API_URL=url)
        assert posted.external_id in {post["id"] for post in _posts(url)}
        after = XAdapter(again).publish(_credentials(tokens), _post({"posts": [f"After {uuid.uuid4().hex}"]}))
        assert after.external_id in {post["id"] for post in _posts(x_url)}
    finally:
        restarted.stop()


def test_a_500_after_create_is_ambiguous_and_reconciled_to_the_post(settings: Settings, x_url: str) -> None:
    credentials = _credentials(_connect(settings))
    tag = uuid.uuid4().hex[:6]
    post = _post({"posts": [f"Server hiccup {tag}"]})
    started = utc_now()
    _fault(x_url, route="POST /2/tweets", mode="500_after_create")
    with pytest.raises(PlatformError) as failed:
        XAdapter(settings).publish(credentials, post)
    assert failed.value.kind == "ambiguous" and failed.value.status == 500
    found = XAdapter(settings).reconcile(credentials, post, started)
    [stored] = [p for p in _posts(x_url) if tag in p["text"]]
    assert found is not None and found.external_id == stored["id"]
