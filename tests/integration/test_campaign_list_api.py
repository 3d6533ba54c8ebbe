"""`GET /api/v1/campaigns` in-process: Flask test client, real Postgres under RLS, HS256 tokens.

Campaign rows are written directly (with chosen timestamps, statuses and pending decisions), so the
listing is tested independently of how campaigns are created and advanced.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import flask
import jwt
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from shared.api import app as api_app
from shared.api.listing import CAMPAIGN_KINDS, CAMPAIGN_STATUSES
from shared.api.service import Api
from shared.db import campaigns as db
from shared.db.pool import as_user, connect
from shared.db.workspaces import ensure_workspace
from shared.settings import get_settings
from shared.testing.fakes import RecordingQueue
from tests.integration.harness import TEST_ENV, make_settings

SECRET = "campaign-list-test-secret-at-least-32-bytes"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
URL = "/api/v1/campaigns"


@dataclass
class Member:
    """A workspace member and the headers of their requests."""

    workspace_id: str
    user_id: str
    headers: dict[str, str]


def _token(user_id: str, workspace_id: str | None) -> dict[str, str]:
    now = int(time.time())
    app_metadata = {"workspace_id": workspace_id} if workspace_id else {}
    claims = {"sub": user_id, "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + 3600,
              "app_metadata": app_metadata}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


def _member(dsn: str, *, user_id: str | None = None, claim_workspace: bool = True) -> Member:
    slug = f"cl-{uuid.uuid4().hex[:10]}"
    user_id = user_id or str(uuid.uuid4())
    with connect(dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
    return Member(workspace_id, user_id, _token(user_id, workspace_id if claim_workspace else None))


def _seed(dsn: str, workspace_id: str, at: datetime, *, kind: str = "campaign", status: str = "queued",
          title: str | None = None, step: str | None = None, pending: str | None = None,
          campaign_id: uuid.UUID | None = None) -> uuid.UUID:
    """Write one campaign row as the runtime would have left it."""
    campaign_id = campaign_id or uuid.uuid4()
    brief = {"title": title or f"Campaign {campaign_id.hex[:6]}", "objective": "Sell gift boxes"}
    decision = None if pending is None else Jsonb({"id": f"d-{campaign_id.hex[:8]}", "kind": pending, "payload": {}})
    with connect(dsn) as conn:
        conn.execute(
            "INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief, status, current_step,"
            " pending_decision, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (campaign_id, workspace_id, uuid.uuid4(), kind, Jsonb(brief), status, step, decision, at,
             at + timedelta(minutes=5)))
    return campaign_id


@pytest.fixture
def client(pool: ConnectionPool, migrated_dsn: str,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[flask.testing.FlaskClient]:
    for name, value in {**TEST_ENV, "DATABASE_URL": migrated_dsn, "SUPABASE_JWT_SECRET": SECRET}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    service = Api(settings=make_settings(migrated_dsn, SUPABASE_JWT_SECRET=SECRET), pool=pool,
                  queue=RecordingQueue(), phonepe_factory=lambda: None)
    monkeypatch.setattr(api_app, "api", lambda: service)
    server = flask.Flask(__name__)
    server.add_url_rule("/<path:path>", "api", lambda path: api_app.dispatch(flask.request),
                        methods=["GET", "POST"])
    try:
        yield server.test_client()
    finally:
        get_settings.cache_clear()


@pytest.fixture
def member(migrated_dsn: str) -> Member:
    return _member(migrated_dsn)


def _ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def _newest_first(*pairs: tuple[datetime, uuid.UUID]) -> list[str]:
    return [str(i) for _, i in sorted(pairs, reverse=True)]


class TestListing:
    def test_newest_first_with_ties_broken_by_id(self, client, member: Member, migrated_dsn: str) -> None:
        tie = T0 + timedelta(hours=1)
        ids = [uuid.UUID(int=n << 64) for n in (3, 1, 2)]
        seeded = [(T0, _seed(migrated_dsn, member.workspace_id, T0)),
                  (T0 + timedelta(hours=2), _seed(migrated_dsn, member.workspace_id, T0 + timedelta(hours=2)))]
        seeded += [(tie, _seed(migrated_dsn, member.workspace_id, tie, campaign_id=i)) for i in ids]
        body = client.get(URL, headers=member.headers).get_json()
        assert _ids(body) == _newest_first(*seeded) and body["next_cursor"] is None
        assert _ids(body)[1:4] == [str(ids[0]), str(ids[2]), str(ids[1])]

    def test_a_summary_carries_title_step_and_pending_decision_kind(self, client, member: Member,
                                                                    migrated_dsn: str) -> None:
        waiting = _seed(migrated_dsn, member.workspace_id, T0 + timedelta(minutes=1), kind="move",
                        status="awaiting_decision", title="Diwali gift boxes", step="qa_gate", pending="qa_review")
        _seed(migrated_dsn, member.workspace_id, T0, status="running", step="research")
        first, second = client.get(f"{URL}/", headers=member.headers).get_json()["items"]
        assert first == {"id": str(waiting), "kind": "move", "title": "Diwali gift boxes",
                         "status": "awaiting_decision", "current_step": "qa_gate",
                         "pending_decision_kind": "qa_review", "created_at": "2026-11-01T09:01:00Z",
                         "updated_at": "2026-11-01T09:06:00Z"}
        assert second["pending_decision_kind"] is None and second["current_step"] == "research"

    def test_empty_workspace(self, client, member: Member) -> None:
        assert client.get("/v1/campaigns", headers=member.headers).get_json() == {"items": [], "next_cursor": None}


class TestFilters:
    @pytest.fixture
    def seeded(self, member: Member, migrated_dsn: str) -> dict[tuple[str, str], str]:
        rows = [("campaign", "running"), ("move", "running"), ("campaign", "completed"), ("move", "failed"),
                ("campaign", "awaiting_payment"), ("move", "queued")]
        return {(kind, status): str(_seed(migrated_dsn, member.workspace_id, T0 + timedelta(minutes=n), kind=kind,
                                          status=status))
                for n, (kind, status) in enumerate(rows)}

    @pytest.mark.parametrize(("query", "expected"), [
        ([("status", "running")], {("campaign", "running"), ("move", "running")}),
        ([("status", "running,completed")], {("campaign", "running"), ("move", "running"), ("campaign", "completed")}),
        ([("status", "failed"), ("status", "queued")], {("move", "failed"), ("move", "queued")}),
        ([("status", " failed , queued,")], {("move", "failed"), ("move", "queued")}),
        ([("kind", "move")], {("move", "running"), ("move", "failed"), ("move", "queued")}),
        ([("kind", "campaign"), ("status", "running,awaiting_payment")],
         {("campaign", "running"), ("campaign", "awaiting_payment")}),
        ([("kind", "campaign,move"), ("status", "expired")], set()),
        ([("status", ""), ("cursor", ""), ("limit", "")], {
            ("campaign", "running"), ("move", "running"), ("campaign", "completed"), ("move", "failed"),
            ("campaign", "awaiting_payment"), ("move", "queued")}),
    ])
    def test_status_and_kind(self, client, member: Member, seeded: dict[tuple[str, str], str],
                             query: list[tuple[str, str]], expected: set[tuple[str, str]]) -> None:
        response = client.get(URL, query_string=query, headers=member.headers)
        assert response.status_code == 200
        items = response.get_json()["items"]
        assert {(i["kind"], i["status"]) for i in items} == expected
        assert [i["id"] for i in items] == [seeded[k] for k in reversed(seeded) if k in expected]

    def test_statuses_offered_are_the_schemas(self, pool: ConnectionPool) -> None:
        """The allowed values are exactly what the table's CHECK constraints accept."""
        with pool.connection() as conn:
            checks = [r["def"] for r in conn.execute(
                "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint"
                " WHERE conrelid = 'public.campaigns'::regclass AND contype = 'c'")]
        allowed = {column: set(re.findall(r"'([a-z_]+)'", d)) for d in checks
                   for column in ("status", "kind") if d.startswith(f"CHECK (({column} ")}
        assert allowed == {"status": set(CAMPAIGN_STATUSES), "kind": set(CAMPAIGN_KINDS)}


class TestPagination:
    def test_pages_through_everything_once_while_campaigns_are_added(self, client, member: Member,
                                                                     migrated_dsn: str) -> None:
        times = [T0 + timedelta(minutes=n // 2, microseconds=n // 2 * 7001) for n in range(11)]
        seeded = [(at, _seed(migrated_dsn, member.workspace_id, at)) for at in times]
        expected = _newest_first(*seeded)
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            query = {"limit": 4} | ({"cursor": cursor} if cursor else {})
            body = client.get(URL, query_string=query, headers=member.headers).get_json()
            seen += _ids(body)
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
            _seed(migrated_dsn, member.workspace_id, T0 + timedelta(days=pages))
            if pages == 1:
                late = T0 - timedelta(days=1)
                expected.append(str(_seed(migrated_dsn, member.workspace_id, late)))
        assert pages == 3 and len(seen) == len(set(seen)) and seen == expected

    def test_a_page_ending_at_the_last_campaign_has_no_next_cursor(self, client, member: Member,
                                                                   migrated_dsn: str) -> None:
        for n in range(4):
            _seed(migrated_dsn, member.workspace_id, T0 + timedelta(minutes=n), kind="move")
        _seed(migrated_dsn, member.workspace_id, T0 + timedelta(minutes=9))
        first = client.get(URL, query_string={"kind": "move", "limit": 2}, headers=member.headers).get_json()
        second = client.get(URL, query_string={"kind": "move", "limit": 2, "cursor": first["next_cursor"]},
                            headers=member.headers).get_json()
        assert len(first["items"]) == 2 and len(second["items"]) == 2 and second["next_cursor"] is None
        assert {i["kind"] for i in first["items"] + second["items"]} == {"move"}

    def test_default_and_maximum_page_sizes(self, client, member: Member, migrated_dsn: str) -> None:
        with connect(migrated_dsn) as conn:
            conn.execute(
                "INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief, created_at)"
                " SELECT gen_random_uuid(), %s, gen_random_uuid(), 'campaign', '{\"title\": \"t\"}',"
                " %s - n * interval '1 second' FROM generate_series(1, 105) n", (member.workspace_id, T0))
        default = client.get(URL, headers=member.headers).get_json()
        assert len(default["items"]) == 20 and default["next_cursor"]
        biggest = client.get(URL, query_string={"limit": 100}, headers=member.headers).get_json()
        rest = client.get(URL, query_string={"limit": 100, "cursor": biggest["next_cursor"]},
                          headers=member.headers).get_json()
        assert len(biggest["items"]) == 100 and len(rest["items"]) == 5 and rest["next_cursor"] is None
        assert _ids(biggest)[:20] == _ids(default)

    def test_the_index_serves_order_and_cursor(self, member: Member, migrated_dsn: str, pool: ConnectionPool) -> None:
        """One index range scan, no sort, for the first page and for a later page (the cursor bounds the scan)."""

        class Explain:
            def __init__(self, conn: Any) -> None:
                self.conn = conn

            def execute(self, query: str, params: dict[str, Any]) -> Any:
                return self.conn.execute("EXPLAIN " + query, params)

        with connect(migrated_dsn) as conn:
            conn.execute(
                "INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief, status, created_at)"
                " SELECT gen_random_uuid(), %s, gen_random_uuid(), 'campaign', '{}',"
                " (ARRAY['queued', 'running', 'completed'])[1 + n %% 3], %s - n * interval '1 minute'"
                " FROM generate_series(1, 3000) n", (member.workspace_id, T0))
            conn.execute("ANALYZE public.campaigns")
        claims = {"sub": member.user_id, "role": "authenticated", "aud": "authenticated"}
        for after in (None, (T0 - timedelta(days=1), uuid.uuid4())):
            with as_user(pool, claims) as conn:
                plan = "\n".join(r["QUERY PLAN"] for r in db.list_campaigns(
                    Explain(conn), workspace_id=member.workspace_id, statuses=["running"], after=after, limit=21))
            assert "Index Scan using campaigns_workspace_recent_idx" in plan and "Sort" not in plan, plan
            [bound] = [line for line in plan.splitlines() if "Index Cond" in line]
            assert ("ROW(created_at, id) < ROW(" in bound) == (after is not None), plan


class TestWorkspaces:
    def test_another_workspaces_campaigns_never_appear(self, client, member: Member, migrated_dsn: str,
                                                       pool: ConnectionPool) -> None:
        mine = _seed(migrated_dsn, member.workspace_id, T0)
        other = _member(migrated_dsn)
        theirs = [_seed(migrated_dsn, other.workspace_id, T0 + timedelta(minutes=n)) for n in range(3)]
        assert _ids(client.get(URL, headers=member.headers).get_json()) == [str(mine)]
        assert _ids(client.get(URL, headers=other.headers).get_json()) == [str(t) for t in reversed(theirs)]
        foreign = client.get(URL, headers={**other.headers, "X-Workspace-Id": member.workspace_id})
        assert foreign.status_code == 404 and member.workspace_id in foreign.get_json()["error"]["message"]
        claims = {"sub": other.user_id, "role": "authenticated", "aud": "authenticated"}
        with as_user(pool, claims) as conn:
            assert db.list_campaigns(conn, workspace_id=member.workspace_id, limit=10) == []

    def test_workspace_chosen_by_header_or_the_only_membership(self, client, migrated_dsn: str) -> None:
        first = _member(migrated_dsn, claim_workspace=False)
        only = _seed(migrated_dsn, first.workspace_id, T0)
        assert _ids(client.get(URL, headers=first.headers).get_json()) == [str(only)]
        second = _member(migrated_dsn, user_id=first.user_id, claim_workspace=False)
        there = _seed(migrated_dsn, second.workspace_id, T0)
        ambiguous = client.get(URL, headers=first.headers)
        assert ambiguous.status_code == 400 and "X-Workspace-Id" in ambiguous.get_json()["error"]["message"]
        chosen = client.get(URL, headers={**first.headers, "X-Workspace-Id": second.workspace_id})
        assert _ids(chosen.get_json()) == [str(there)]


def _cursor(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


class TestBadRequests:
    @pytest.mark.parametrize(("query", "field", "words"), [
        ({"status": "bogus"}, "status", "'bogus' is not one of queued, running, awaiting_decision"),
        ({"status": "running,Completed"}, "status", "'Completed'"),
        ([("status", "running"), ("status", "done")], "status", "'done'"),
        ({"kind": "campaigns"}, "kind", "'campaigns' is not one of campaign, move"),
        ({"limit": "0"}, "limit", "from 1 to 100; got '0'"),
        ({"limit": "101"}, "limit", "got '101'"),
        ({"limit": "-1"}, "limit", "got '-1'"),
        ({"limit": "ten"}, "limit", "got 'ten'"),
        ({"limit": "1.5"}, "limit", "got '1.5'"),
        ([("limit", "5"), ("limit", "6")], "limit", "at most once"),
        ({"cursor": "not a cursor!"}, "cursor", "not a cursor this API issued"),
        ({"cursor": _cursor({"c": "2026-11-01T09:00:00+00:00"})}, "cursor", "not a cursor"),
        ({"cursor": _cursor({"c": "2026-11-01T09:00:00", "i": str(uuid.uuid4())})}, "cursor", "not a cursor"),
        ({"cursor": _cursor({"c": "yesterday", "i": str(uuid.uuid4())})}, "cursor", "not a cursor"),
        ({"cursor": _cursor({"c": "2026-11-01T09:00:00+00:00", "i": 7})}, "cursor", "not a cursor"),
        ({"cursor": _cursor([1, 2])}, "cursor", "not a cursor"),
    ])
    def test_a_bad_parameter_is_a_400_naming_it(self, client, member: Member, query: Any, field: str,
                                                words: str) -> None:
        response = client.get(URL, query_string=query, headers=member.headers)
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["code"] == "invalid_request" and f"`{field}`" in error["message"] and words in error["message"]
        assert error["details"]["field"] == field
        if field in ("status", "kind"):
            assert error["details"]["allowed"] == list(CAMPAIGN_STATUSES if field == "status" else CAMPAIGN_KINDS)

    def test_needs_a_token_before_anything_else(self, client) -> None:
        assert client.get(URL, query_string={"status": "bogus"}).status_code == 401

    def test_is_in_the_openapi_document(self, client) -> None:
        spec = client.get("/api/v1/openapi.json").get_json()
        operation = spec["paths"]["/api/v1/campaigns"]["get"]
        assert {p["name"] for p in operation["parameters"]} == {"status", "kind", "limit", "cursor", "X-Workspace-Id"}
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/CampaignPage")
        assert {"CampaignPage", "CampaignSummary"} <= set(spec["components"]["schemas"])
        refs = {m.group(1) for m in re.finditer(r'"#/components/schemas/([^"]+)"', json.dumps(spec))}
        assert refs <= set(spec["components"]["schemas"])
