"""The audit log on a real Postgres: append-only for every role, written with its change, scoped by workspace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import flask
import jwt
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from werkzeug.datastructures import MultiDict

from shared.api import audit as audit_api
from shared.api.app import dispatch
from shared.api.audit import AuditApi, AuditQuery
from shared.api.models import Decision
from shared.api.openapi import openapi_document
from shared.auth import Principal
from shared.db import audit
from shared.db.pool import as_service, as_user, connect
from shared.db.workspaces import ensure_workspace
from shared.errors import InvalidRequest
from shared.settings import get_settings
from tests.integration.harness import TEST_ENV, Harness, make_settings


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


# ------------------------------------------------------------------------------------ GET /api/v1/audit


def _query(**params: str | list[str]) -> AuditQuery:
    return AuditQuery.from_args(MultiDict([(k, v) for k, vs in params.items()
                                           for v in (vs if isinstance(vs, list) else [vs])]))


@pytest.fixture
def log(pool: ConnectionPool, member: Principal) -> list[int]:
    """Five entries in the member's workspace, oldest first: two actors, three actions, two targets."""
    ids = []
    spec = [("brand_kit.updated", "brand_kit", "kit"), ("knowledge.added", "knowledge_resource", "doc-1"),
            ("knowledge.deleted", "knowledge_resource", "doc-1"), ("knowledge.added", "knowledge_resource", "doc-2"),
            ("settings.updated", "workspace_settings", None)]
    for n, (action, target_type, target_id) in enumerate(spec):
        with as_service(pool) as conn:
            ids.append(audit.record(conn, workspace_id=_workspace(member),
                                    actor=str(member.user_id) if n % 2 == 0 else audit.function_actor("ingest"),
                                    action=action, target_type=target_type,  # type: ignore[arg-type]
                                    target_id=target_id))
    return ids  # type: ignore[return-value]


class TestAuditApi:
    def test_pages_cover_every_entry_once_newest_first(self, pool: ConnectionPool, member: Principal,
                                                       log: list[int]) -> None:
        """Keyset pages of 2: no entry repeated or skipped, even for entries sharing a timestamp."""
        api = AuditApi(pool=pool)
        seen: list[int] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = api.page(member, None, _query(limit="2", **({"cursor": cursor} if cursor else {})))
            seen += [e.id for e in page.entries]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == list(reversed(log)) and pages == 3

    def test_filters_by_action_actor_target_and_time(self, pool: ConnectionPool, member: Principal,
                                                     log: list[int]) -> None:
        """Each filter narrows the page to exactly the matching entries."""
        api = AuditApi(pool=pool)

        def ids(**params: str | list[str]) -> list[int]:
            return [e.id for e in api.page(member, None, _query(**params)).entries]

        assert ids(action="knowledge.added,knowledge.deleted") == [log[3], log[2], log[1]]
        assert ids(action=["brand_kit.updated", "settings.updated"]) == [log[4], log[0]]
        assert ids(actor="function:ingest") == [log[3], log[1]]
        assert ids(actor=str(member.user_id).upper()) == [log[4], log[2], log[0]]
        assert ids(target_type="knowledge_resource", target_id="doc-1") == [log[2], log[1]]
        with as_user(pool, member.claims) as conn:
            stamps = {e["id"]: e["created_at"] for e in audit.list_entries(conn, _workspace(member))}
        assert ids(since=stamps[log[0]].isoformat()) == list(reversed(log))
        assert ids(until=stamps[log[0]].isoformat()) == []
        assert ids(since="2000-01-01T00:00:00Z", until="2001-01-01T00:00:00+05:30") == []
        assert ids(since="2100-01-01T00:00:00Z", until="2000-01-01T00:00:00Z") == []

    @pytest.mark.parametrize(("params", "field"), [
        ({"action": "brand_kit.deleted"}, "action"), ({"actor": "root"}, "actor"),
        ({"target_type": "user"}, "target_type"), ({"since": "yesterday"}, "since"),
        ({"until": "2026-12-01T10:00:00"}, "until"), ({"limit": "0"}, "limit"), ({"limit": "²"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"), ({"actor": ["system", "system"]}, "actor"),
        ({"until": ""}, "until"), ({"action": "knowledge.added,"}, "action"), ({"target_id": ""}, "target_id"),
    ])
    def test_bad_parameters_are_400s_naming_them(self, params: dict[str, str | list[str]], field: str) -> None:
        """A clear 400 whose details name the parameter, never a 5xx."""
        with pytest.raises(InvalidRequest) as caught:
            _query(**params)
        assert caught.value.details["field"] == field and f"`{field}`" in caught.value.message

    def test_the_route_answers_json_for_a_member(self, pool: ConnectionPool, member: Principal, log: list[int],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        """Through the API dispatcher with a signed token; the route is in the OpenAPI document."""
        secret = "audit-test-secret-of-at-least-32-bytes!!"
        monkeypatch.setenv("SUPABASE_JWT_SECRET", secret)
        for name, value in TEST_ENV.items():
            if name != "SUPABASE_JWT_SECRET":
                monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        monkeypatch.setattr(audit_api, "service", lambda: AuditApi(pool=pool))
        try:
            token = jwt.encode({**member.claims, "exp": 4102444800}, secret, algorithm="HS256")
            with flask.Flask("audit-test").test_request_context(
                    "/api/v1/audit?action=knowledge.added&limit=1", headers={"Authorization": f"Bearer {token}"}):
                response = dispatch(flask.request)
            body = response.get_json()
            assert response.status_code == 200, body
            assert [e["id"] for e in body["entries"]] == [log[3]] and body["next_cursor"]
            assert "/api/v1/audit" in openapi_document()["paths"]
        finally:
            get_settings.cache_clear()


class TestDecisionsAreAudited:
    def _timeout(self, h: Harness) -> None:
        function, message = [(f, m) for f, m, d in h.queue.published if d and m.kind == "decision_timeout"][-1]
        h.deliver(function, message)

    def _decisions(self, pool: ConnectionPool, principal: Principal) -> list[tuple[str, str]]:
        with as_user(pool, principal.claims) as conn:
            return [(e["actor"], e["details"]["action"])
                    for e in audit.list_entries(conn, _workspace(principal), actions=["decision.recorded"])]

    def test_a_timeout_decision_is_recorded_by_system(self, pool: ConnectionPool, migrated_dsn: str) -> None:
        """The workspace rule applied on timeout is a decision too, recorded in the step's transaction."""
        h = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn))
        principal = h.workspace(settings={"auto_approve_max_budget_inr": 1000})
        h.create(principal)
        h.pump()
        self._timeout(h)
        assert self._decisions(pool, principal) == [("system", "expire")]

    def test_a_timeout_after_the_user_answered_records_only_the_user(self, pool: ConnectionPool,
                                                                     migrated_dsn: str) -> None:
        """The raced timeout rolls back with its audit entry; a replayed answer records nothing new."""
        h = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn))
        principal = h.workspace(settings={"auto_approve_max_budget_inr": 1000})
        campaign_id = h.create(principal)
        h.pump()
        pending = h.row(campaign_id)["pending_decision"]
        for _ in range(2):
            h.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
        self._timeout(h)
        assert self._decisions(pool, principal) == [(str(principal.user_id), "approve")]
