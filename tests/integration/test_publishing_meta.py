"""The Meta adapters (Instagram, Facebook Page) and the Meta connection against the Graph emulator over HTTP.

The emulator is served in-process as the local stack mounts it (`/meta`); an image host stands in for the
signed Storage URL Meta fetches the media from.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import flask
import httpx
import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import meta as emulator
from infra.local.emulators.config import EmulatorConfig
from infra.local.serve import RunningServer, serve_in_thread
from shared.publishing.adapters.meta import MetaOAuth, adapter, caption_key, oauth, post_text
from shared.publishing.ports import Credentials, Media, PlatformError, PostRequest
from shared.security.redact import REDACTED
from shared.settings import Settings
from tests.integration.harness import make_settings

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 4 + b"\xff\xd9"


@pytest.fixture(scope="module")
def servers(fresh_database_dsn: str) -> Iterator[dict[str, str]]:
    """The Graph emulator under `/meta` and an image host under `/images`, on one loopback server."""
    images = flask.Flask("images")

    @images.get("/<name>")
    def image(name: str) -> Any:
        if name.endswith(".jpg"):
            return flask.Response(JPEG, mimetype="image/jpeg")
        return flask.Response(b"\x89PNG\r\n\x1a\n" + bytes(64), mimetype="image/png")

    root = flask.Flask("root")
    app = DispatcherMiddleware(root, {"/meta": emulator.create_app(EmulatorConfig(database_url=fresh_database_dsn)),
                                      "/images": images})
    server: RunningServer = serve_in_thread(app)
    try:
        yield {"meta": f"{server.url}/meta", "images": f"{server.url}/images"}
    finally:
        server.stop()


@pytest.fixture
def meta(servers: dict[str, str]) -> Iterator[str]:
    """The emulator's base URL, with no fault left armed after the test."""
    yield servers["meta"]
    httpx.delete(f"{servers['meta']}/__emu/faults")


def _settings(servers: dict[str, str], **overrides: str) -> Settings:
    values = {"META_GRAPH_URL": servers["meta"], "META_DIALOG_URL": servers["meta"],
              "META_APP_ID": emulator.LOCAL_APP_ID, "META_APP_SECRET": emulator.LOCAL_APP_SECRET,
              "MUSE_META_TIMEOUT_SECONDS": "1"}
    return make_settings("postgresql://unused", **{**values, **overrides})


def _connect(servers: dict[str, str]) -> Credentials:
    """The whole Facebook Login flow: follow the dialog, take the code from the redirect, exchange it."""
    flow = oauth(_settings(servers))
    redirect_uri = "http://127.0.0.1:9/api/v1/channels/meta/callback"
    url = flow.authorization_url(state="st4te", redirect_uri=redirect_uri, code_challenge=None)
    answer = httpx.get(url)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["state"] == ["st4te"]
    tokens = flow.exchange_code(code=query["code"][0], redirect_uri=redirect_uri, code_verifier=None)
    return Credentials(connection_id=str(uuid.uuid4()), workspace_id=str(uuid.uuid4()), provider="meta",
                       account_id=tokens.account_id, access_token=tokens.access_token, settings=tokens.settings)


def _post(provider: str, text: str, *, images: str | None = None, name: str = "a.jpg") -> PostRequest:
    content = {"caption": text, "hashtags": ["diwali", "#muse"]} if provider == "instagram" else {"text": text}
    media = (Media(asset_id="asset-1", content_type="image/jpeg", data=JPEG, url=f"{images}/{name}",
                   alt_text="A lamp"),) if images else ()
    return PostRequest(publication_id=str(uuid.uuid4()), provider=provider, channel="instagram_caption",  # type: ignore[arg-type]
                       content=content, content_hash=caption_key(text), media=media)


def _posts(meta: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{meta}/__emu/posts").json()["posts"])


def _fault(meta: str, route: str, mode: str, **extra: Any) -> None:
    assert httpx.post(f"{meta}/__emu/faults", json={"route": route, "mode": mode, **extra}).status_code == 201


class TestConnection:
    def test_login_yields_the_page_token_and_instagram_account(self, servers: dict[str, str], meta: str) -> None:
        """Code → long-lived user token → Page token; the Page's Instagram business account rides along."""
        flow = oauth(_settings(servers))
        assert isinstance(flow, MetaOAuth) and not flow.uses_pkce
        url = flow.authorization_url(state="s", redirect_uri="http://127.0.0.1:9/cb", code_challenge=None)
        assert "pages_manage_posts" in parse_qs(urlsplit(url).query)["scope"][0]
        code = parse_qs(urlsplit(httpx.get(url).headers["Location"]).query)["code"][0]
        tokens = flow.exchange_code(code=code, redirect_uri="http://127.0.0.1:9/cb", code_verifier=None)
        assert tokens.account_id == emulator.PAGE_ID and tokens.account_name == emulator.PAGE_NAME
        assert tokens.settings["instagram_account_id"] == emulator.INSTAGRAM_ID
        assert tokens.refresh_token and tokens.expires_at and tokens.expires_at > datetime.now(UTC) + timedelta(days=50)
        assert tokens.access_token not in repr(tokens)
        with pytest.raises(PlatformError) as reused:
            flow.exchange_code(code=code, redirect_uri="http://127.0.0.1:9/cb", code_verifier=None)
        assert reused.value.kind == "permanent" and "used" in reused.value.message
        refreshed = flow.refresh(tokens.refresh_token)
        assert refreshed.access_token != tokens.access_token and refreshed.account_id == emulator.PAGE_ID

    def test_a_wrong_app_secret_is_refused(self, servers: dict[str, str], meta: str) -> None:
        """Every Graph call carries `appsecret_proof`; a wrong secret fails the exchange with Graph's message."""
        flow = oauth(_settings(servers, META_APP_SECRET="not-the-secret"))
        url = flow.authorization_url(state="s", redirect_uri="http://127.0.0.1:9/cb", code_challenge=None)
        code = parse_qs(urlsplit(httpx.get(url).headers["Location"]).query)["code"][0]
        with pytest.raises(PlatformError, match="client secret"):
            flow.exchange_code(code=code, redirect_uri="http://127.0.0.1:9/cb", code_verifier=None)


    def test_an_expired_page_token_is_refreshed_and_a_revoked_one_is_not(self, servers: dict[str, str],
                                                                        meta: str) -> None:
        """Expired: the long-lived user token (the refresh token) yields a new Page token that publishes.
        Revoked: the refresh itself is refused with `reconnect` and Graph's reason."""
        flow = oauth(_settings(servers))
        url = flow.authorization_url(state="s", redirect_uri="http://127.0.0.1:9/cb", code_challenge=None)
        code = parse_qs(urlsplit(httpx.get(url).headers["Location"]).query)["code"][0]
        tokens = flow.exchange_code(code=code, redirect_uri="http://127.0.0.1:9/cb", code_verifier=None)
        assert tokens.refresh_token is not None
        credentials = Credentials(connection_id="c", workspace_id="w", provider="meta", account_id=tokens.account_id,
                                  access_token=tokens.access_token, settings=tokens.settings)
        facebook = adapter(_settings(servers), "facebook")
        _fault(meta, "feed", "expired")
        with pytest.raises(PlatformError) as expired:
            facebook.publish(credentials, _post("facebook", f"Expired {uuid.uuid4().hex[:6]}"))
        assert expired.value.kind == "reconnect" and "expired" in expired.value.message
        refreshed = flow.refresh(tokens.refresh_token)
        renewed = Credentials(connection_id="c", workspace_id="w", provider="meta", account_id=refreshed.account_id,
                              access_token=refreshed.access_token, settings=refreshed.settings)
        assert facebook.publish(renewed, _post("facebook", f"Renewed {uuid.uuid4().hex[:6]}")).external_id
        _fault(meta, "feed", "revoked")
        with pytest.raises(PlatformError):
            facebook.publish(renewed, _post("facebook", "Revoked"))
        with pytest.raises(PlatformError) as revoked:
            flow.refresh(refreshed.refresh_token or "")
        assert revoked.value.kind == "reconnect" and "not authorized" in revoked.value.message


def test_no_token_or_secret_reaches_a_log_line(servers: dict[str, str], meta: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs every request URL at INFO: Graph calls carry the token in a header, and the code exchange's
    query secrets (code, client secret, user token) are masked in those lines (the emulator's own request log,
    `werkzeug`, is the platform's side and not looked at)."""
    with caplog.at_level(logging.DEBUG):
        credentials = _connect(servers)
        adapter(_settings(servers), "facebook").publish(credentials, _post("facebook", f"Logs {uuid.uuid4().hex}"))
    lines = "\n".join(record.getMessage() for record in caplog.records if record.name != "werkzeug")
    assert "HTTP Request: GET" in lines and f"client_secret={REDACTED}" in lines and f"code={REDACTED}" in lines
    for secret in (credentials.access_token, emulator.LOCAL_APP_SECRET):
        assert secret not in lines


class TestInstagram:
    def test_publishes_an_image_through_a_container(self, servers: dict[str, str], meta: str) -> None:
        """Quota read, container (IN_PROGRESS, then FINISHED), publish: one medium with the caption and image."""
        credentials = _connect(servers)
        post = _post("instagram", f"Lamps for Diwali {uuid.uuid4().hex[:6]}", images=servers["images"])
        result = adapter(_settings(servers), "instagram").publish(credentials, post)
        mine = [p for p in _posts(meta) if p["id"] == result.external_id]
        assert len(mine) == 1 and mine[0]["platform"] == "instagram"
        assert mine[0]["caption"] == post_text(post.content) and mine[0]["caption"].endswith("#diwali #muse")
        assert mine[0]["media_url"] == post.media[0].url and mine[0]["alt_text"] == "A lamp"
        assert result.url == mine[0]["permalink"] and result.url.startswith("https://www.instagram.com/p/")
        limit = httpx.get(f"{meta}/v26.0/{emulator.INSTAGRAM_ID}/content_publishing_limit",
                          params={"access_token": credentials.access_token}).json()["data"][0]
        assert limit["quota_usage"] >= 1 and limit["config"]["quota_total"] == emulator.QUOTA_TOTAL

    def test_without_an_image_it_is_a_permanent_error_naming_it(self, servers: dict[str, str], meta: str) -> None:
        """Instagram publishes nothing without an image: refused before any call, naming the missing media."""
        credentials = _connect(servers)
        before = len(_posts(meta))
        with pytest.raises(PlatformError) as failure:
            adapter(_settings(servers), "instagram").publish(credentials, _post("instagram", "No picture"))
        assert failure.value.kind == "permanent" and "image" in failure.value.message
        assert len(_posts(meta)) == before

    def test_an_image_meta_cannot_use_is_permanent(self, servers: dict[str, str], meta: str) -> None:
        """A PNG (Instagram takes JPEG) is refused at the container with Graph's reason."""
        credentials = _connect(servers)
        post = _post("instagram", "Wrong format", images=servers["images"], name="a.png")
        with pytest.raises(PlatformError) as failure:
            adapter(_settings(servers), "instagram").publish(credentials, post)
        assert failure.value.kind == "permanent" and "JPEG" in failure.value.message

    def test_timeout_after_publish_is_found_without_a_second_post(self, servers: dict[str, str], meta: str) -> None:
        """media_publish goes through but its answer never arrives: the container reads PUBLISHED and the
        medium is found by its caption; reconcile finds the same one; nothing is posted twice."""
        credentials = _connect(servers)
        post = _post("instagram", f"Timeout {uuid.uuid4().hex[:6]}", images=servers["images"])
        _fault(meta, "media_publish", "timeout_after_create", seconds=2)
        started = datetime.now(UTC)
        result = adapter(_settings(servers), "instagram").publish(credentials, post)
        mine = [p for p in _posts(meta) if p.get("caption") == post_text(post.content)]
        assert [p["id"] for p in mine] == [result.external_id]
        found = adapter(_settings(servers), "instagram").reconcile(credentials, post, started)
        assert found is not None and found.external_id == result.external_id and found.url == result.url

    def test_server_error_on_publish_is_ambiguous_and_reconcile_finds_none(self, servers: dict[str, str],
                                                                           meta: str) -> None:
        """A 500 on media_publish leaves the outcome unknown to the adapter (ambiguous); the container is not
        PUBLISHED, and reconcile finds no post, so a later attempt may publish."""
        credentials = _connect(servers)
        post = _post("instagram", f"Ambiguous {uuid.uuid4().hex[:6]}", images=servers["images"])
        _fault(meta, "media_publish", "500")
        started = datetime.now(UTC)
        instagram = adapter(_settings(servers), "instagram")
        with pytest.raises(PlatformError) as failure:
            instagram.publish(credentials, post)
        assert failure.value.kind == "ambiguous" and failure.value.status == 500
        assert instagram.reconcile(credentials, post, started) is None
        result = instagram.publish(credentials, post)
        assert [p["id"] for p in _posts(meta) if p.get("caption") == post_text(post.content)] == [result.external_id]

    def test_throttling_is_retryable_and_creates_nothing(self, servers: dict[str, str], meta: str) -> None:
        """A 429 (Graph code 4) on publish: retryable, and the container stays unpublished."""
        credentials = _connect(servers)
        post = _post("instagram", f"Throttled {uuid.uuid4().hex[:6]}", images=servers["images"])
        _fault(meta, "media_publish", "429")
        with pytest.raises(PlatformError) as failure:
            adapter(_settings(servers), "instagram").publish(credentials, post)
        assert failure.value.kind == "retryable" and failure.value.status == 429
        assert not [p for p in _posts(meta) if p.get("caption") == post_text(post.content)]

    @pytest.mark.parametrize("mode", ["expired", "revoked"])
    def test_expired_or_revoked_token_asks_for_reconnect(self, servers: dict[str, str], meta: str, mode: str) -> None:
        """Graph code 190: `reconnect`, with the platform's reason and no token in the message."""
        credentials = _connect(servers)
        _fault(meta, "*", mode)
        with pytest.raises(PlatformError) as failure:
            adapter(_settings(servers), "instagram").publish(
                credentials, _post("instagram", "Token gone", images=servers["images"]))
        assert failure.value.kind == "reconnect" and "190" in failure.value.message
        assert ("expired" if mode == "expired" else "not authorized") in failure.value.message
        assert credentials.access_token not in failure.value.message


class TestFacebook:
    def test_text_post_then_duplicate_is_reconciled(self, servers: dict[str, str], meta: str) -> None:
        """A Page post; the same message again is Graph's 506 (ambiguous), and reconcile finds the first."""
        credentials = _connect(servers)
        facebook = adapter(_settings(servers), "facebook")
        post = _post("facebook", f"Hello from the Page {uuid.uuid4().hex[:6]}")
        started = datetime.now(UTC)
        result = facebook.publish(credentials, post)
        assert result.external_id.startswith(f"{emulator.PAGE_ID}_") and "facebook.com" in result.url
        with pytest.raises(PlatformError) as duplicate:
            facebook.publish(credentials, post)
        assert duplicate.value.kind == "ambiguous" and "506" in duplicate.value.message
        found = facebook.reconcile(credentials, post, started)
        assert found is not None and found.external_id == result.external_id

    def test_photo_post_and_timeout_after_create(self, servers: dict[str, str], meta: str) -> None:
        """With an image the post goes to /photos; a timeout after it is ambiguous and reconcile finds it once."""
        credentials = _connect(servers)
        facebook = adapter(_settings(servers), "facebook")
        post = _post("facebook", f"Photo {uuid.uuid4().hex[:6]}", images=servers["images"])
        _fault(meta, "photos", "timeout_after_create", seconds=2)
        started = datetime.now(UTC)
        with pytest.raises(PlatformError) as failure:
            facebook.publish(credentials, post)
        assert failure.value.kind == "ambiguous"
        found = facebook.reconcile(credentials, post, started)
        mine = [p for p in _posts(meta) if p.get("message") == post_text(post.content)]
        assert found is not None and [p["id"] for p in mine] == [found.external_id]
        assert mine[0]["full_picture"] == post.media[0].url

    def test_throttled_page_is_retryable(self, servers: dict[str, str], meta: str) -> None:
        credentials = _connect(servers)
        _fault(meta, "feed", "429")
        with pytest.raises(PlatformError) as failure:
            adapter(_settings(servers), "facebook").publish(credentials, _post("facebook", "Busy"))
        assert failure.value.kind == "retryable"
