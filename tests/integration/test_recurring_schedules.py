"""Recurring schedules: the API over real Postgres, QStash schedules through the official SDK against the QStash
emulator (its cron sped up: one cron minute per second), and the `scheduler` function served on loopback.

A tick starts a move that pauses for approval as usual (here: its start message reaches the recorded queue, the
planner's inbox); a duplicated tick starts one move; a paused or deleted schedule starts none.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import flask
import pytest
from psycopg_pool import ConnectionPool
from qstash import QStash
from werkzeug.exceptions import NotFound as WerkzeugNotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators.config import DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_TOKEN, EmulatorConfig
from infra.local.emulators.qstash import create_app
from infra.local.emulators.qstash.signing import sign
from infra.local.serve import RunningServer, serve_in_thread
from infra.local.token import mint
from shared.api import app as api_app
from shared.api import schedules as schedules_api
from shared.api.recurring import Schedules, qstash_schedule_id
from shared.api.service import Api
from shared.auth import verify_token
from shared.db.pool import connect
from shared.db.workspaces import ensure_workspace
from shared.http import qstash_response
from shared.queue import qstash_receiver
from shared.settings import Settings, get_settings
from shared.testing.fakes import RecordingQueue
from shared.testing.payments import FakePhonePe
from tests.integration.knowledge_world import BASE_ENV

ISSUER = "http://127.0.0.1/auth/v1"


@dataclass
class World:
    dsn: str
    settings: Settings
    qstash: QStash
    queue: RecordingQueue
    schedules: Schedules
    scheduler_url: str

    def member(self) -> tuple[str, str, str]:
        """A new workspace and its only member: (workspace id, user id, bearer token)."""
        slug = f"sch-{uuid.uuid4().hex[:10]}"
        user_id = str(uuid.uuid4())
        with connect(self.dsn) as conn, conn.transaction():
            workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
        token = mint(BASE_ENV["SUPABASE_JWT_SECRET"], user_id=user_id, workspace_id=workspace_id, slug=slug,
                     issuer=ISSUER)
        return workspace_id, user_id, token

    def call(self, method: str, path: str, token: str, **kwargs: Any) -> flask.Response:
        with flask.Flask("schedules").test_request_context(path, method=method,
                                                            headers={"Authorization": f"Bearer {token}"}, **kwargs):
            return api_app.dispatch(flask.request)

    def campaigns(self, workspace_id: str) -> list[dict[str, Any]]:
        with connect(self.dsn) as conn:
            return conn.execute("SELECT id, kind, brief, idempotency_key FROM public.campaigns WHERE workspace_id = %s "
                                "ORDER BY created_at", (workspace_id,)).fetchall()


def _wait(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.fixture
def world(pool: ConnectionPool, migrated_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    emulator = create_app(EmulatorConfig(database_url=migrated_dsn, qstash_backoff_scale=0.001,
                                         qstash_poll_interval=0.02, qstash_cron_seconds=1.0))
    qstash_server: RunningServer = serve_in_thread(DispatcherMiddleware(WerkzeugNotFound(), {"/qstash": emulator}))
    holder: dict[str, Schedules] = {}
    function = flask.Flask("scheduler")

    @function.post("/")
    def scheduler() -> flask.Response:
        return qstash_response(lambda: schedules_api.tick(flask.request))

    function_server = serve_in_thread(function)
    env = {**BASE_ENV, "DATABASE_URL": migrated_dsn, "QSTASH_URL": f"{qstash_server.url}/qstash",
           "QSTASH_TOKEN": DEV_QSTASH_TOKEN, "MUSE_FUNCTION_URLS": json.dumps({"scheduler": f"{function_server.url}/"})}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    settings = Settings(**env)  # type: ignore[arg-type]
    queue = RecordingQueue()
    client = QStash(DEV_QSTASH_TOKEN, base_url=settings.qstash_url)
    holder["service"] = Schedules(api=Api(settings=settings, pool=pool, queue=queue,  # type: ignore[arg-type]
                                          phonepe_factory=FakePhonePe),
                                  qstash=client, receiver=qstash_receiver(settings))
    monkeypatch.setattr(schedules_api, "service", lambda: holder["service"])
    try:
        yield World(migrated_dsn, settings, client, queue, holder["service"], f"{function_server.url}/")
    finally:
        function_server.stop()
        qstash_server.stop()
        emulator.extensions["qstash_emulator"].stop()
        get_settings.cache_clear()


WEEKLY = {"name": "Weekly LinkedIn post", "cron": "0 9 * * 1",
          "brief": {"title": "Weekly LinkedIn post", "objective": "Share one customer story a week",
                    "channels": ["linkedin_post"]}}


def test_a_schedule_is_a_qstash_schedule_in_the_workspaces_timezone(world: World) -> None:
    workspace_id, user_id, token = world.member()
    created = world.call("POST", "/api/v1/schedules", token, json=WEEKLY)
    view = created.get_json()
    assert created.status_code == 201, view
    assert view["timezone"] == "Asia/Kolkata" and view["kind"] == "move" and view["status"] == "active"
    runs = [datetime.fromisoformat(r) for r in view["next_runs"]]
    assert len(runs) == 3 and all(r.utcoffset() is not None and r.utcoffset().total_seconds() == 19800 for r in runs)
    assert all(r.weekday() == 0 and (r.hour, r.minute) == (9, 0) for r in runs)
    assert runs[0] > datetime.now(UTC) and (runs[1] - runs[0]).days == 7
    remote = world.qstash.schedule.get(qstash_schedule_id(view["id"]))
    assert remote.cron == "CRON_TZ=Asia/Kolkata 0 9 * * 1" and remote.destination == world.scheduler_url
    assert json.loads(remote.body or "{}") == {"schedule_id": view["id"]}

    listed = world.call("GET", "/api/v1/schedules?limit=5", token).get_json()
    assert [s["id"] for s in listed["items"]] == [view["id"]] and listed["next_cursor"] is None
    with connect(world.dsn) as conn:
        actions = [r["action"] for r in conn.execute(
            "SELECT action FROM public.audit_log WHERE workspace_id = %s", (workspace_id,)).fetchall()]
    assert "schedule.created" in actions

    paused = world.call("POST", f"/api/v1/schedules/{view['id']}/pause", token).get_json()
    assert paused["status"] == "paused" and paused["next_runs"] == []
    assert world.qstash.schedule.get(qstash_schedule_id(view["id"])).paused is True
    again = world.call("POST", f"/api/v1/schedules/{view['id']}/pause", token)
    assert again.status_code == 200 and again.get_json()["status"] == "paused"
    resumed = world.call("POST", f"/api/v1/schedules/{view['id']}/resume", token).get_json()
    assert resumed["status"] == "active" and world.qstash.schedule.get(qstash_schedule_id(view["id"])).paused is False

    assert world.call("DELETE", f"/api/v1/schedules/{view['id']}", token).status_code == 204
    assert world.call("GET", f"/api/v1/schedules/{view['id']}", token).status_code == 404
    assert qstash_schedule_id(view["id"]) not in {s.schedule_id for s in world.qstash.schedule.list()}


def test_each_tick_starts_one_move_and_a_paused_schedule_starts_none(world: World) -> None:
    workspace_id, _, token = world.member()
    body = {**WEEKLY, "cron": "* * * * *", "timezone": "Asia/Kolkata"}
    view = world.call("POST", "/api/v1/schedules", token, json=body).get_json()
    _wait(lambda: len(world.campaigns(workspace_id)) >= 1)
    world.call("POST", f"/api/v1/schedules/{view['id']}/pause", token)
    time.sleep(0.3)
    started = world.campaigns(workspace_id)
    time.sleep(2.5)
    assert world.campaigns(workspace_id) == started, "a paused schedule started a move"
    first = started[0]
    assert first["kind"] == "move" and first["brief"]["title"] == "Weekly LinkedIn post"
    assert first["brief"]["start_date"] == datetime.now(ZoneInfo("Asia/Kolkata")).date().isoformat()
    assert first["idempotency_key"].startswith(f"schedule-{view['id']}-")
    starts = [m for f, m, _ in world.queue.published if f == "planner" and m.kind == "start"]
    assert {str(m.campaign_id) for m in starts} == {str(c["id"]) for c in started}
    shown = world.call("GET", f"/api/v1/schedules/{view['id']}", token).get_json()
    assert shown["ticks"] == len(started) and shown["last_campaign_id"] == str(started[-1]["id"])
    assert shown["last_error"] is None


def _signed_tick(world: World, schedule_id: str) -> tuple[bytes, str]:
    body = json.dumps({"schedule_id": schedule_id}).encode()
    return body, sign(body, world.scheduler_url, DEV_QSTASH_CURRENT_SIGNING_KEY)


def test_a_duplicated_tick_starts_one_move(world: World) -> None:
    workspace_id, _, token = world.member()
    view = world.call("POST", "/api/v1/schedules", token, json=WEEKLY).get_json()
    body, signature = _signed_tick(world, view["id"])
    now = datetime.now(UTC)
    replies = [world.schedules.handle_tick(body, signature, message_id="msg_tick_1", now=now) for _ in range(3)]
    assert [r.body["status"] for r in replies] == ["started", "duplicate", "duplicate"]
    assert len({r.body["campaign_id"] for r in replies}) == 1 and len(world.campaigns(workspace_id)) == 1
    later = world.schedules.handle_tick(body, signature, message_id="msg_tick_2", now=now)
    assert later.body["status"] == "started" and len(world.campaigns(workspace_id)) == 2
    shown = world.call("GET", f"/api/v1/schedules/{view['id']}", token).get_json()
    assert shown["ticks"] == 2


def test_a_tick_of_a_member_who_left_starts_nothing_and_says_why(world: World) -> None:
    workspace_id, user_id, token = world.member()
    view = world.call("POST", "/api/v1/schedules", token, json=WEEKLY).get_json()
    with connect(world.dsn) as conn:
        conn.execute("DELETE FROM public.workspace_members WHERE workspace_id = %s AND user_id = %s",
                     (workspace_id, user_id))
        conn.execute("INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'owner')",
                     (workspace_id, str(uuid.uuid4())))
    body, signature = _signed_tick(world, view["id"])
    reply = world.schedules.handle_tick(body, signature, message_id="msg_left", now=datetime.now(UTC))
    assert reply.status == 200 and reply.body["status"] == "skipped"
    assert world.campaigns(workspace_id) == []
    with connect(world.dsn) as conn:
        error = conn.execute("SELECT last_error FROM public.recurring_schedules WHERE id = %s",
                             (view["id"],)).fetchone()["last_error"]
    assert error["code"] == "forbidden" and workspace_id in error["message"] and user_id in error["message"]


def test_a_forged_tick_is_refused(world: World) -> None:
    _, _, token = world.member()
    view = world.call("POST", "/api/v1/schedules", token, json=WEEKLY).get_json()
    body = json.dumps({"schedule_id": view["id"]}).encode()
    forged = sign(body, world.scheduler_url, "sig_not_the_signing_key_00000000")
    with flask.Flask("t").test_request_context("/", method="POST", data=body,
                                               headers={"Upstash-Signature": forged}):
        answer = qstash_response(lambda: schedules_api.tick(flask.request))
    assert answer.status_code == 401


@pytest.mark.parametrize(("change", "field"), [
    ({"cron": "0 9 * *"}, "cron"),
    ({"cron": "61 9 * * 1"}, "cron"),
    ({"cron": "CRON_TZ=UTC 0 9 * * 1"}, "cron"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"brief": {**WEEKLY["brief"], "start_date": "2026-12-07"}}, "brief"),  # type: ignore[dict-item]
    ({"name": "   "}, "name"),
    ({"every": "monday"}, "every"),
])
def test_bad_schedules_are_400s_naming_the_field(world: World, change: dict[str, Any], field: str) -> None:
    _, _, token = world.member()
    answer = world.call("POST", "/api/v1/schedules", token, json={**WEEKLY, **change})
    error = answer.get_json()["error"]
    assert answer.status_code == 400, error
    assert field in json.dumps(error)
    assert world.qstash.schedule.list() == [] or all(
        s.schedule_id.startswith("muse-schedule-") for s in world.qstash.schedule.list())


def test_unknown_and_malformed_ids(world: World) -> None:
    _, _, token = world.member()
    assert world.call("GET", f"/api/v1/schedules/{uuid.uuid4()}", token).status_code == 404
    assert world.call("GET", "/api/v1/schedules/not-a-uuid", token).status_code == 400
    assert world.call("POST", f"/api/v1/schedules/{uuid.uuid4()}/pause", token).status_code == 404
    assert world.call("DELETE", f"/api/v1/schedules/{uuid.uuid4()}", token).status_code == 404


def test_another_workspace_cannot_see_or_change_a_schedule(world: World) -> None:
    _, _, token = world.member()
    _, _, stranger = world.member()
    view = world.call("POST", "/api/v1/schedules", token, json=WEEKLY).get_json()
    assert world.call("GET", f"/api/v1/schedules/{view['id']}", stranger).status_code == 404
    assert world.call("DELETE", f"/api/v1/schedules/{view['id']}", stranger).status_code == 404
    assert world.call("GET", "/api/v1/schedules", stranger).get_json()["items"] == []
    assert verify_token(f"Bearer {token}", world.settings).user_id
