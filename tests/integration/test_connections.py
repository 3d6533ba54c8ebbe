"""Channel connections on real Postgres: OAuth state and PKCE, sealed tokens, refresh, reconnect, rotation.

The platform is `FakeOAuth` (an `OAuthProvider` in memory); the adapters' own OAuth flows against their
emulators are exercised in `test_channels_api.py`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from shared.db.pool import connect
from shared.errors import InvalidRequest, NotFound
from shared.publishing.connections import ApiKeyConnection, ChannelNotConnected
from shared.security.envelope import SecretUnreadable
from tests.integration.channel_fakes import ConnectionsWorld, approve, key_spec


@pytest.fixture
def world(pool: ConnectionPool, migrated_dsn: str) -> Iterator[ConnectionsWorld]:
    yield ConnectionsWorld(dsn=migrated_dsn, pool=pool)


def _connect(world: ConnectionsWorld, provider: str = "x") -> tuple[str, str, str]:
    """(workspace, user, connection id) after a full connect through the fake platform."""
    service = world.service()
    workspace, user = world.workspace()
    state, code = approve(service.start(workspace_id=workspace, user_id=user, provider=provider))  # type: ignore[arg-type]
    row = service.callback(provider=provider, state=state, code=code)  # type: ignore[arg-type]
    return workspace, user, row["id"]


def _expire(world: ConnectionsWorld, connection_id: str, *, seconds: int = 60) -> None:
    with connect(world.dsn) as conn:
        conn.execute("UPDATE public.channel_connections SET expires_at = now() + make_interval(secs => %s) "
                     "WHERE id = %s", (seconds, connection_id))


class TestOAuth:
    def test_connect_and_callback_store_the_connection_with_pkce_and_an_audit_entry(
            self, world: ConnectionsWorld) -> None:
        """X gets an S256 challenge whose verifier (kept sealed server-side) reaches the exchange; the connection is
        `connected` for the account the platform named, and the connect is audited without any token."""
        workspace, user, connection_id = _connect(world, "x")
        platform = world.platform("x")
        assert platform.exchanges and platform.exchanges[0] is not None and len(platform.exchanges[0]) >= 43
        credentials = world.service().credentials_for(workspace, "x")
        assert credentials.access_token.startswith("AT-first-") and credentials.account_id == "acct-42"
        assert credentials.settings == {"handle": "@acme"} and "AT-" not in repr(credentials)
        with connect(world.dsn) as conn:
            entry = conn.execute("SELECT actor, action, target_id, details::text AS details FROM public.audit_log "
                                 "WHERE workspace_id = %s", (workspace,)).fetchone()
        assert entry is not None and (entry["actor"], entry["action"], entry["target_id"]) == (
            user, "channel.connected", connection_id)
        assert "AT-" not in entry["details"] and "RT-" not in entry["details"]

    def test_linkedin_gets_no_pkce_and_a_reconnect_keeps_the_connection_id(self, world: ConnectionsWorld) -> None:
        """No challenge for a platform without PKCE; connecting again replaces the tokens of the same connection."""
        service = world.service()
        workspace, user = world.workspace()
        first = None
        for _ in range(2):
            url = service.start(workspace_id=workspace, user_id=user, provider="linkedin")
            assert "code_challenge" not in url
            state, code = approve(url)
            row = service.callback(provider="linkedin", state=state, code=code)
            first = first or row["id"]
            assert row["id"] == first and row["status"] == "connected"
        assert world.platform("linkedin").exchanges == [None, None]

    def test_a_state_is_single_use_expires_and_belongs_to_one_provider(self, world: ConnectionsWorld) -> None:
        """Replay, unknown, expired and foreign states are 400s naming `state`; a wrong-provider use spends it."""
        service = world.service()
        workspace, user = world.workspace()
        state, code = approve(service.start(workspace_id=workspace, user_id=user, provider="x"))
        service.callback(provider="x", state=state, code=code)
        with pytest.raises(InvalidRequest, match="already used") as replay:
            service.callback(provider="x", state=state, code=code)
        assert replay.value.details["field"] == "state"
        with pytest.raises(NotFound, match="never issued"):
            service.callback(provider="x", state="never-issued", code=code)

        state, code = approve(service.start(workspace_id=workspace, user_id=user, provider="x"))
        with connect(world.dsn) as conn:
            conn.execute("UPDATE public.oauth_states SET expires_at = now() - interval '1 second'")
        with pytest.raises(InvalidRequest, match="expired"):
            service.callback(provider="x", state=state, code=code)

        state, code = approve(service.start(workspace_id=workspace, user_id=user, provider="x"))
        with pytest.raises(InvalidRequest, match="issued for x, not linkedin"):
            service.callback(provider="linkedin", state=state, code=code)
        with pytest.raises(InvalidRequest, match="already used"):
            service.callback(provider="x", state=state, code=code)

    def test_concurrent_callbacks_with_one_state_connect_once(self, world: ConnectionsWorld) -> None:
        """Four deliveries of the same callback at once: one exchanges the code, three are told it was used."""
        service = world.service()
        workspace, user = world.workspace()
        state, code = approve(service.start(workspace_id=workspace, user_id=user, provider="x"))

        def deliver(_: int) -> str:
            try:
                return service.callback(provider="x", state=state, code=code)["status"]
            except InvalidRequest as exc:
                return exc.details["field"]

        with ThreadPoolExecutor(4) as pool:
            outcomes = sorted(pool.map(deliver, range(4)))
        assert outcomes == ["connected", "state", "state", "state"]
        assert len(world.platform("x").exchanges) == 1

    def test_a_denial_or_a_refused_code_is_a_400_and_stores_nothing(self, world: ConnectionsWorld) -> None:
        """`error=access_denied` and a code the platform refuses leave no connection."""
        service = world.service()
        workspace, user = world.workspace()
        state, _ = approve(service.start(workspace_id=workspace, user_id=user, provider="x"))
        with pytest.raises(InvalidRequest, match="did not grant access"):
            service.callback(provider="x", state=state, code=None, error="access_denied")
        state, _ = approve(service.start(workspace_id=workspace, user_id=user, provider="x"))
        with pytest.raises(InvalidRequest, match="refused the authorization code"):
            service.callback(provider="x", state=state, code="forged")
        with pytest.raises(ChannelNotConnected) as missing:
            service.credentials_for(workspace, "x")
        assert missing.value.status is None


class TestRefresh:
    def test_a_token_expiring_within_the_margin_is_refreshed_once_for_concurrent_callers(
            self, world: ConnectionsWorld) -> None:
        """Six callers at once: one refresh (the others wait on the row lock and find it fresh), all get the new
        token, and the new refresh token is stored for the next time."""
        workspace, _, connection_id = _connect(world, "x")
        platform = world.platform("x")
        platform.refresh_delay_seconds = 0.3
        _expire(world, connection_id, seconds=60)
        service = world.service()
        with ThreadPoolExecutor(6) as pool:
            tokens = list(pool.map(lambda _: service.credentials_for(workspace, "x").access_token, range(6)))
        assert len(platform.refreshes) == 1 and platform.refreshes[0].startswith("RT-first-")
        assert len(set(tokens)) == 1 and tokens[0].startswith("AT-r1-")
        _expire(world, connection_id, seconds=60)
        service.credentials_for(workspace, "x")
        assert platform.refreshes[1].startswith("RT-r1-")
        with connect(world.dsn) as conn:
            row = conn.execute("SELECT refreshed_at, expires_at FROM public.channel_connections WHERE id = %s",
                               (connection_id,)).fetchone()
        assert row is not None and row["refreshed_at"] is not None
        assert row["expires_at"] > datetime.now(UTC) + timedelta(hours=1)

    def test_a_fresh_token_is_not_refreshed(self, world: ConnectionsWorld) -> None:
        workspace, _, _ = _connect(world, "x")
        world.service().credentials_for(workspace, "x")
        assert world.platform("x").refreshes == []

    def test_a_revoked_refresh_marks_needs_reconnect_with_the_platform_reason_until_reconnected(
            self, world: ConnectionsWorld) -> None:
        """The platform's reason is kept and given to every later caller; a reconnect makes it usable again."""
        workspace, user, connection_id = _connect(world, "x")
        platform = world.platform("x")
        platform.revoked_reason = "invalid_grant: Value passed for the token was invalid (revoked by the user)"
        _expire(world, connection_id, seconds=10)
        service = world.service()
        for _ in range(2):
            with pytest.raises(ChannelNotConnected, match="revoked by the user") as caught:
                service.credentials_for(workspace, "x")
            assert (caught.value.status, caught.value.connection_id) == ("needs_reconnect", connection_id)
        assert len(platform.refreshes) == 1
        platform.revoked_reason = None
        state, code = approve(service.start(workspace_id=workspace, user_id=user, provider="x"))
        assert service.callback(provider="x", state=state, code=code)["id"] == connection_id
        assert service.credentials_for(workspace, "x").access_token.startswith("AT-first-")

    def test_mark_needs_reconnect_and_disconnect(self, world: ConnectionsWorld) -> None:
        """The engine's 401 marks the connection once; a disconnect erases both tokens and is audited."""
        workspace, user, connection_id = _connect(world, "x")
        service = world.service()
        assert service.mark_needs_reconnect(connection_id, "401 Unauthorized: token revoked")
        assert not service.mark_needs_reconnect(connection_id, "again")
        with pytest.raises(ChannelNotConnected, match="401 Unauthorized"):
            service.credentials_for(workspace, "x")
        row = service.disconnect(workspace_id=workspace, connection_id=connection_id, user_id=user)
        assert row["status"] == "revoked"
        with connect(world.dsn) as conn:
            stored = conn.execute("SELECT access_token, refresh_token FROM public.channel_connections WHERE id = %s",
                                  (connection_id,)).fetchone()
            actions = [r["action"] for r in conn.execute(
                "SELECT action FROM public.audit_log WHERE workspace_id = %s ORDER BY id", (workspace,))]
        assert stored == {"access_token": None, "refresh_token": None}
        assert actions == ["channel.connected", "channel.disconnected"]
        with pytest.raises(ChannelNotConnected):
            service.credentials_for(workspace, "x")


def test_facebook_and_instagram_use_the_meta_connection_and_email_connects_with_a_key(
        world: ConnectionsWorld) -> None:
    """A publishing provider maps to its connection; an API-key connection hands out its key and settings."""
    workspace, user, _ = _connect(world, "meta")
    service = world.service()
    assert service.credentials_for(workspace, "instagram").provider == "meta"
    assert service.credentials_for(workspace, "facebook").access_token.startswith("AT-first-")
    service.connect_api_key(workspace_id=workspace, user_id=user, provider="email", connection=ApiKeyConnection(
        api_key="re_live_key_123", account_id="news@acme.in", account_name="Acme",
        settings={"recipients": ["a@acme.in"]}))
    email = service.credentials_for(workspace, "email")
    assert (email.access_token, email.account_id, email.settings) == ("re_live_key_123", "news@acme.in",
                                                                     {"recipients": ["a@acme.in"]})


def test_rotation_reads_old_secrets_and_rewraps_them_so_the_old_key_can_retire(world: ConnectionsWorld) -> None:
    """After the active key changes, a connection sealed under the old one still works and is re-wrapped on
    read; then a keyring without the old key reads it, and one without the new key cannot."""
    workspace, _, connection_id = _connect(world, "x")
    new = os.urandom(32)
    rotated = world.service(keys=key_spec(k1=world.key, k2=new), active="k2")
    token = rotated.credentials_for(workspace, "x").access_token
    with connect(world.dsn) as conn:
        row = conn.execute("SELECT access_token->>'kid' AS a, refresh_token->>'kid' AS r FROM "
                           "public.channel_connections WHERE id = %s", (connection_id,)).fetchone()
    assert row == {"a": "k2", "r": "k2"}
    assert world.service(keys=key_spec(k2=new)).credentials_for(workspace, "x").access_token == token
    with pytest.raises(SecretUnreadable):
        world.service().credentials_for(workspace, "x")


def test_tokens_are_unreadable_in_a_database_dump_and_absent_from_logs(
        world: ConnectionsWorld, caplog: pytest.LogCaptureFixture) -> None:
    """Every column of every table, read as text, holds none of the tokens, keys or PKCE verifiers issued."""
    caplog.set_level(logging.DEBUG)
    workspace, user, connection_id = _connect(world, "x")
    service = world.service()
    _expire(world, connection_id)
    service.credentials_for(workspace, "x")
    service.connect_api_key(workspace_id=workspace, user_id=user, provider="whatsapp", connection=ApiKeyConnection(
        api_key="EAAG-whatsapp-system-user-token", account_id="1098765", account_name="",
        settings={"template": "diwali_offer"}))
    platform = world.platform("x")
    secrets = [s for s in [*platform.exchanges, *platform.refreshes, "EAAG-whatsapp-system-user-token",
                           service.credentials_for(workspace, "x").access_token] if s]
    assert len(secrets) >= 4
    dump: list[str] = []
    with connect(world.dsn) as conn:
        tables = [r["table_name"] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE'")]
        for table in tables:
            query = sql.SQL("SELECT t::text AS row FROM public.{} t").format(sql.Identifier(table))
            dump += [r["row"] for r in conn.execute(query)]
    text = "\n".join(dump)
    assert "channel_connections" in tables and connection_id in text
    for secret in secrets:
        assert secret not in text, f"a secret is readable in the dump ({secret[:6]}…)"
        assert secret not in caplog.text
