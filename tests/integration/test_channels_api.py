"""The channels and workspace-keys routes as the API function serves them, and each OAuth provider's real adapter
against its emulator (LinkedIn, X, Meta: authorize page followed, code exchanged in the callback, refresh, revoke).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from psycopg_pool import ConnectionPool

from infra.local.emulators import linkedin as linkedin_emulator
from infra.local.emulators import meta as meta_emulator
from infra.local.emulators import x as x_emulator
from infra.local.emulators.config import EmulatorConfig
from infra.local.serve import serve_in_thread
from shared.api import channels
from shared.db import channels as db
from shared.db.pool import as_service, connect
from shared.publishing.connections import ChannelNotConnected, Connections
from shared.security.envelope import Binding, Keyring
from shared.security.keys import WorkspaceKeys
from tests.integration.channel_fakes import key_spec
from tests.integration.harness import make_settings
from tests.integration.served_api import Served, served, token  # noqa: F401

PUBLIC = "https://muse.example.in"
EMAIL = {"api_key": "re_live_a1b2c3d4e5f6", "from_address": "news@acme.in", "from_name": "Acme",
         "recipients": ["asha@example.in", "ravi@example.in"]}
WHATSAPP = {"access_token": "EAAG-system-user-token-123", "phone_number_id": "109876543210",
            "template": "diwali_offer", "template_language": "en_US", "recipients": ["919812345678"]}


@dataclass
class Platforms:
    """The three OAuth platforms' emulators on loopback and the settings pointing the adapters at them."""

    urls: dict[str, str]
    config: EmulatorConfig
    env: dict[str, str]


@pytest.fixture(scope="module")
def platforms(migrated_dsn: str) -> Iterator[Platforms]:
    config = EmulatorConfig(database_url=migrated_dsn)
    servers = {"x": serve_in_thread(x_emulator.create_app(config)),
               "linkedin": serve_in_thread(linkedin_emulator.create_app(config)),
               "meta": serve_in_thread(meta_emulator.create_app(config))}
    urls = {name: server.url for name, server in servers.items()}
    env = {"MUSE_ENCRYPTION_KEYS": key_spec(k1=os.urandom(32)), "MUSE_PUBLIC_URL": PUBLIC,
           "X_API_URL": urls["x"], "X_AUTHORIZE_URL": f"{urls['x']}/i/oauth2/authorize",
           "X_CLIENT_ID": config.x_client_id, "X_CLIENT_SECRET": config.x_client_secret,
           "LINKEDIN_API_URL": urls["linkedin"], "LINKEDIN_OAUTH_URL": f"{urls['linkedin']}/oauth/v2",
           "LINKEDIN_CLIENT_ID": config.linkedin_client_id, "LINKEDIN_CLIENT_SECRET": config.linkedin_client_secret,
           "META_GRAPH_URL": urls["meta"], "META_DIALOG_URL": urls["meta"], "META_APP_ID": meta_emulator.LOCAL_APP_ID,
           "META_APP_SECRET": meta_emulator.LOCAL_APP_SECRET}
    try:
        yield Platforms(urls=urls, config=config, env=env)
    finally:
        for server in servers.values():
            server.stop()


def _install(served: Served, platforms: Platforms, pool: ConnectionPool, dsn: str,  # noqa: F811
             monkeypatch: pytest.MonkeyPatch, **extra: str) -> ChannelsApiWorld:
    """The served API with the channels service on the platforms' settings (real adapters, real keyring)."""
    settings = make_settings(dsn, **platforms.env, **extra)
    connections = Connections(pool=pool, settings=settings, keyring=Keyring.from_settings(settings))
    built = channels.ChannelsApi(pool=pool, settings=settings, connections=connections,
                                 keys=WorkspaceKeys(pool=pool, settings=settings))
    monkeypatch.setattr(channels, "service", lambda: built)
    return ChannelsApiWorld(served=served, platforms=platforms, connections=connections)


@pytest.fixture
def api(served: Served, platforms: Platforms, pool: ConnectionPool, migrated_dsn: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> ChannelsApiWorld:
    return _install(served, platforms, pool, migrated_dsn, monkeypatch)


@dataclass
class ChannelsApiWorld:
    served: Served
    platforms: Platforms
    connections: Connections

    def owner(self) -> tuple[dict[str, str], str]:
        headers = self.served.member()
        claims = json.loads(_payload(headers["Authorization"][7:]))
        return headers, str(claims["app_metadata"]["workspace_id"])

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.served.client().open(path, method=method, headers=headers or {}, **kwargs)


def _payload(jwt_text: str) -> str:
    part = jwt_text.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def _follow(authorization_url: str) -> str:
    """The browser approving at the platform: the callback path and query it is sent back to."""
    response = httpx.get(authorization_url, follow_redirects=False, timeout=10)
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"].split("#")[0]
    assert location.startswith(PUBLIC), location
    return location[len(PUBLIC):]


@pytest.mark.parametrize("provider", ["x", "linkedin", "meta"])
def test_connect_through_the_platform_and_the_callback_without_a_token(
        api: ChannelsApiWorld, provider: str, caplog: pytest.LogCaptureFixture) -> None:
    """POST connect → `authorization_url` at the emulator → approved → GET callback (no bearer) → `connected`,
    the account the platform named; listing shows it, never a token; a replayed callback is a 400."""
    caplog.set_level(logging.DEBUG)
    headers, workspace = api.owner()
    started = api.call("POST", f"/api/v1/channels/{provider}/connect", headers)
    assert started.status_code == 200, started.get_data(as_text=True)
    url = started.get_json()["authorization_url"]
    assert url.startswith(api.platforms.urls[provider]) and ("code_challenge=" in url) == (provider == "x")
    back = _follow(url)
    assert back.startswith(f"/api/v1/channels/{provider}/callback?")
    done = api.call("GET", back)
    assert done.status_code == 200, done.get_data(as_text=True)
    view = done.get_json()
    assert (view["provider"], view["status"]) == (provider, "connected") and view["account_id"]
    assert "access_token" not in done.get_data(as_text=True)

    listed = api.call("GET", "/api/v1/channels", headers).get_json()
    assert [c["id"] for c in listed["channels"]] == [view["id"]]
    credentials = api.connections.credentials_for(workspace, provider)  # type: ignore[arg-type]
    assert credentials.access_token and credentials.access_token not in json.dumps(listed)
    with as_service(api.connections.pool) as conn:
        row = db.live_connection(conn, workspace, provider)  # type: ignore[arg-type]
    assert row is not None and row["refresh_token"] is not None
    refresh = api.connections.keyring.open(row["refresh_token"], Binding(workspace, view["id"], "refresh_token"))
    secrets = [credentials.access_token, refresh, *(v for k, v in api.platforms.env.items() if k.endswith("SECRET"))]
    assert [s[:8] for s in secrets if s in caplog.text] == []

    replay = api.call("GET", back)
    assert replay.status_code == 400 and replay.get_json()["error"]["details"]["field"] == "state"


def test_x_refreshes_a_token_about_to_expire_and_a_revoked_one_needs_a_reconnect(api: ChannelsApiWorld) -> None:
    """Through XOAuth and the X emulator: near expiry the token is refreshed (the new one works at X); once the
    emulator revokes every token, the refresh fails and the channel shows `needs_reconnect` with X's reason."""
    headers, workspace = api.owner()
    back = _follow(api.call("POST", "/api/v1/channels/x/connect", headers).get_json()["authorization_url"])
    connection_id = api.call("GET", back).get_json()["id"]
    first = api.connections.credentials_for(workspace, "x").access_token
    with connect(api.served.dsn) as conn:
        conn.execute("UPDATE public.channel_connections SET expires_at = now() + interval '30 seconds' "
                     "WHERE id = %s", (connection_id,))
    refreshed = api.connections.credentials_for(workspace, "x").access_token
    assert refreshed != first
    me = httpx.get(f"{api.platforms.urls['x']}/2/users/me", headers={"Authorization": f"Bearer {refreshed}"})
    assert me.status_code == 200

    armed = httpx.post(f"{api.platforms.urls['x']}/__emu/faults", json={"mode": "token_revoked"})
    assert armed.status_code == 200, armed.text
    with connect(api.served.dsn) as conn:
        conn.execute("UPDATE public.channel_connections SET expires_at = now() + interval '30 seconds' "
                     "WHERE id = %s", (connection_id,))
    with pytest.raises(ChannelNotConnected, match="X refused the refresh"):
        api.connections.credentials_for(workspace, "x")
    listed = api.call("GET", "/api/v1/channels", headers).get_json()["channels"][0]
    assert listed["status"] == "needs_reconnect" and "X refused the refresh" in listed["reason"]


def test_email_and_whatsapp_connect_with_a_key_that_no_response_shows(api: ChannelsApiWorld) -> None:
    """201 with the connection and its settings; the key is in no response; a body of the other provider is a
    422, a malformed one a 400 naming the field; a disconnect revokes it and is audited."""
    headers, workspace = api.owner()
    made = api.call("POST", "/api/v1/channels/email/connect", headers, json=EMAIL)
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json()["account_id"] == "news@acme.in" and EMAIL["api_key"] not in made.get_data(as_text=True)
    whatsapp = api.call("POST", "/api/v1/channels/whatsapp/connect", headers, json=WHATSAPP)
    assert whatsapp.status_code == 201 and WHATSAPP["access_token"] not in whatsapp.get_data(as_text=True)
    assert api.connections.credentials_for(workspace, "whatsapp").settings["template"] == "diwali_offer"

    assert api.call("POST", "/api/v1/channels/email/connect", headers, json=WHATSAPP).status_code == 422
    assert api.call("POST", "/api/v1/channels/email/connect", headers).status_code == 422
    assert api.call("POST", "/api/v1/channels/x/connect", headers, json=EMAIL).status_code == 422
    bad = api.call("POST", "/api/v1/channels/email/connect", headers, json={**EMAIL, "recipients": ["nope"]})
    assert bad.status_code == 400 and "recipients.0" in bad.get_data(as_text=True)
    assert api.call("POST", "/api/v1/channels/telegram/connect", headers).status_code == 400
    no_key_id = api.call("POST", "/api/v1/channels/email/connect", headers, json={**EMAIL, "esp": "ses"})
    assert no_key_id.status_code == 400 and "aws_access_key_id" in no_key_id.get_data(as_text=True)
    ses = api.call("POST", "/api/v1/channels/email/connect", headers, json={
        **EMAIL, "esp": "ses", "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "region": "ap-south-1",
        "unsubscribe_url": "https://acme.in/unsubscribe"})
    assert ses.status_code == 201 and ses.get_json()["id"] == made.get_json()["id"]
    assert api.connections.credentials_for(workspace, "email").settings["esp"] == "ses"

    listing = api.call("GET", "/api/v1/channels", headers).get_data(as_text=True)
    assert EMAIL["api_key"] not in listing and WHATSAPP["access_token"] not in listing
    gone = api.call("DELETE", f"/api/v1/channels/{made.get_json()['id']}", headers)
    assert gone.status_code == 200 and gone.get_json()["status"] == "revoked"
    assert api.call("DELETE", f"/api/v1/channels/{uuid.uuid4()}", headers).status_code == 404
    assert api.call("DELETE", "/api/v1/channels/not-a-uuid", headers).status_code == 400


def test_only_owners_change_channels_and_keys_and_the_callback_names_bad_states(api: ChannelsApiWorld) -> None:
    """A member may list but not connect (403); another workspace's connection is a 404; callback states that
    were never issued are 404s and a missing one a 400; keys are stored, listed as configured, removed."""
    headers, workspace = api.owner()
    member_id = str(uuid.uuid4())
    with connect(api.served.dsn) as conn:
        conn.execute("INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                     (workspace, member_id))
    member = {"Authorization": f"Bearer {token(member_id, workspace)}"}
    assert api.call("GET", "/api/v1/channels", member).status_code == 200
    assert api.call("POST", "/api/v1/channels/email/connect", member, json=EMAIL).status_code == 403
    assert api.call("PUT", "/api/v1/workspace/keys/tavily", member, json={"api_key": "tvly-abcdefgh"}).status_code \
        == 403
    made = api.call("POST", "/api/v1/channels/email/connect", headers, json=EMAIL).get_json()
    stranger, _ = api.owner()
    assert api.call("DELETE", f"/api/v1/channels/{made['id']}", stranger).status_code == 404

    assert api.call("GET", "/api/v1/channels/x/callback?state=never-issued&code=c").status_code == 404
    assert api.call("GET", "/api/v1/channels/x/callback?code=c").status_code == 400
    assert api.call("GET", "/api/v1/channels/email/callback?state=s&code=c").status_code == 400
    assert api.call("GET", "/api/v1/channels/x/callback?state=s&surprise=1").status_code == 400

    put = api.call("PUT", "/api/v1/workspace/keys/tavily", headers, json={"api_key": "tvly-own-key-123456"})
    assert put.status_code == 200 and "tvly-own-key" not in put.get_data(as_text=True)
    listed = api.call("GET", "/api/v1/workspace/keys", headers).get_json()["keys"]
    assert [(k["service"], k["configured"]) for k in listed] == [("gemini", False), ("tavily", True)]
    assert api.call("PUT", "/api/v1/workspace/keys/openai", headers, json={"api_key": "sk-12345678"}).status_code \
        == 400
    assert api.call("PUT", "/api/v1/workspace/keys/gemini", headers, json={"api_key": "short"}).status_code == 400
    assert api.call("DELETE", "/api/v1/workspace/keys/tavily", headers).status_code == 200
    assert api.call("DELETE", "/api/v1/workspace/keys/tavily", headers).status_code == 404


def test_the_callback_redirects_back_to_the_app_when_a_return_url_is_set(
        served: Served, platforms: Platforms, pool: ConnectionPool, migrated_dsn: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With MUSE_CHANNELS_RETURN_URL the browser goes back to the app with the outcome, errors included."""
    api = _install(served, platforms, pool, migrated_dsn, monkeypatch,
                   MUSE_CHANNELS_RETURN_URL="https://app.muse.example.in/channels?tab=1")
    headers, _ = api.owner()
    back = _follow(api.call("POST", "/api/v1/channels/linkedin/connect", headers).get_json()["authorization_url"])
    done = api.call("GET", back)
    assert done.status_code == 302
    query = parse_qs(urlsplit(done.headers["Location"]).query)
    assert query["status"] == ["connected"] and query["provider"] == ["linkedin"] and query["tab"] == ["1"]
    again = parse_qs(urlsplit(api.call("GET", back).headers["Location"]).query)
    assert again["status"] == ["error"] and again["error"] == ["invalid_request"]
