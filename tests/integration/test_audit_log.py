"""The audit log on a real Postgres: append-only for every role, written with its change, scoped by workspace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from shared.auth import Principal
from shared.db import audit
from shared.db.pool import as_service, as_user, connect
from shared.db.workspaces import ensure_workspace


def _member(dsn: str) -> Principal:
    user_id = str(uuid.uuid4())
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=f"au-{uuid.uuid4().hex[:10]}", name="audit", user_id=user_id)
    claims = {"sub": user_id, "aud": "authenticated", "role": "authenticated",
              "app_metadata": {"workspace_id": workspace_id}}
    return Principal(user_id=uuid.UUID(user_id), claims=claims)


def _workspace(principal: Principal) -> str:
    return str(principal.claims["app_metadata"]["workspace_id"])


@pytest.fixture
def member(migrated_dsn: str) -> Principal:
    return _member(migrated_dsn)


@pytest.fixture
def entry(pool: ConnectionPool, member: Principal) -> Iterator[int]:
    with as_service(pool) as conn:
        entry_id = audit.record(conn, workspace_id=_workspace(member), actor=str(member.user_id),
                                action="brand_kit.updated", target_type="brand_kit", target_id=_workspace(member),
                                details={"version": 2})
    assert entry_id is not None
    yield entry_id


class TestAppendOnly:
    @pytest.mark.parametrize("statement", [
        "UPDATE public.audit_log SET actor = 'system' WHERE id = %s",
        "DELETE FROM public.audit_log WHERE id = %s",
    ])
    @pytest.mark.parametrize("role", ["service_role", "authenticated", None])
    def test_no_role_can_change_or_remove_an_entry(self, migrated_dsn: str, entry: int, statement: str,
                                                   role: str | None) -> None:
        """The service role, users and even the table's owner are refused (privileges, then the trigger)."""
        with connect(migrated_dsn) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                if role:
                    conn.execute(f"SET LOCAL ROLE {role}")
                conn.execute(statement, (entry,))
            row = conn.execute("SELECT actor FROM public.audit_log WHERE id = %s", (entry,)).fetchone()
        assert row is not None and row["actor"] != "system"

    def test_truncate_is_refused_even_for_the_owner(self, migrated_dsn: str, entry: int) -> None:
        """TRUNCATE skips row triggers, so a statement trigger refuses it."""
        with connect(migrated_dsn) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("TRUNCATE public.audit_log")
            assert conn.execute("SELECT 1 FROM public.audit_log WHERE id = %s", (entry,)).fetchone()


class TestRecord:
    def test_a_rolled_back_change_leaves_no_entry(self, pool: ConnectionPool, member: Principal) -> None:
        """The entry lives in the change's transaction."""
        class Boom(Exception):
            pass

        with pytest.raises(Boom), as_service(pool) as conn:
            audit.record(conn, workspace_id=_workspace(member), actor=audit.SYSTEM, action="settings.updated",
                         target_type="workspace_settings", target_id=None)
            raise Boom
        with as_user(pool, member.claims) as conn:
            assert audit.list_entries(conn, _workspace(member)) == []

    def test_a_replayed_key_records_once(self, pool: ConnectionPool, member: Principal) -> None:
        """The same key in the same workspace adds no second entry."""
        ids = []
        for _ in range(2):
            with as_user(pool, member.claims) as conn:
                ids.append(audit.record(conn, workspace_id=_workspace(member), actor=str(member.user_id),
                                        action="decision.recorded", target_type="decision", target_id="d-1",
                                        key="decision:d-1"))
        assert ids[0] is not None and ids[1] is None
        with as_user(pool, member.claims) as conn:
            assert [e["id"] for e in audit.list_entries(conn, _workspace(member))] == [ids[0]]

    def test_on_a_user_connection_the_role_is_restored(self, pool: ConnectionPool, member: Principal) -> None:
        """Users cannot insert entries themselves; `record` writes with the service's rights and hands RLS back."""
        with as_user(pool, member.claims) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("INSERT INTO public.audit_log (workspace_id, actor, action, target_type) "
                             "VALUES (%s, 'system', 'settings.updated', 'workspace_settings')", (_workspace(member),))
            audit.record(conn, workspace_id=_workspace(member), actor=str(member.user_id),
                         action="settings.updated", target_type="workspace_settings", target_id=None)
            assert conn.execute("SELECT current_user AS r").fetchone() == {"r": "authenticated"}

    def test_members_read_only_their_workspace(self, pool: ConnectionPool, migrated_dsn: str, member: Principal,
                                               entry: int) -> None:
        """Row-level security hides another workspace's entries even when asked for by id."""
        stranger = _member(migrated_dsn)
        with as_user(pool, stranger.claims) as conn:
            assert audit.list_entries(conn, _workspace(member)) == []
        with as_user(pool, member.claims) as conn:
            assert [e["id"] for e in audit.list_entries(conn, _workspace(member))] == [entry]

    @pytest.mark.parametrize("bad", [{"actor": "root"}, {"action": "brand_kit.deleted"}, {"target_type": "user"}])
    def test_unknown_actor_action_or_target_is_refused(self, pool: ConnectionPool, member: Principal,
                                                        bad: dict[str, str]) -> None:
        """The vocabulary is closed: a typo fails loudly instead of writing an entry no filter finds."""
        args = {"actor": audit.SYSTEM, "action": "settings.updated", "target_type": "workspace_settings", **bad}
        with pytest.raises(ValueError), as_service(pool) as conn:
            audit.record(conn, workspace_id=_workspace(member), target_id=None, **args)  # type: ignore[arg-type]
