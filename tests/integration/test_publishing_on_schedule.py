"""On schedule, through the QStash emulator: delayed messages fire a publication at its time, never a cancelled one.

The `publish` function is served on loopback behind the shared delivery edge (signatures verified); the
QStash emulator holds the delayed messages the engine published with the SDK (`not_before`) and delivers
them when due. The platform, connections and assets are the engine's fakes, on the real clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import flask
import pytest
from psycopg_pool import ConnectionPool

from infra.local.emulators.config import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
    EmulatorConfig,
)
from infra.local.emulators.qstash import create_app as create_qstash
from infra.local.serve import RunningServer, serve_in_thread
from shared.api.publications import PublicationsApi
from shared.http import qstash_response
from shared.publishing.function import PublishFunction
from shared.queue import qstash_queue, qstash_receiver
from shared.settings import Settings
from tests.integration.harness import make_settings
from tests.integration.publishing_world import Clock, World, make_world


class RealClock(Clock):
    """The wall clock (QStash delivers on it)."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def served(migrated_dsn: str) -> Iterator[tuple[Settings, RunningServer, dict[str, PublishFunction]]]:
    qstash = serve_in_thread(create_qstash(EmulatorConfig(database_url=migrated_dsn)))
    functions: dict[str, PublishFunction] = {}
    app = flask.Flask("publish")

    @app.post("/publish")
    def publish() -> flask.Response:
        body, signature = flask.request.get_data(), flask.request.headers.get("Upstash-Signature")
        return qstash_response(lambda: functions["publish"].handle(body, signature))

    server = serve_in_thread(app)
    settings = make_settings(migrated_dsn, QSTASH_URL=qstash.url, QSTASH_TOKEN=DEV_QSTASH_TOKEN,
                             QSTASH_CURRENT_SIGNING_KEY=DEV_QSTASH_CURRENT_SIGNING_KEY,
                             QSTASH_NEXT_SIGNING_KEY=DEV_QSTASH_NEXT_SIGNING_KEY, MUSE_QSTASH_RETRIES="0",
                             MUSE_FUNCTION_URLS=json.dumps({"publish": f"{server.url}/publish"}))
    try:
        yield settings, server, functions
    finally:
        server.stop()
        qstash.stop()


def test_a_rescheduled_publication_fires_at_its_time_and_a_cancelled_one_never(
        pool: ConnectionPool, migrated_dsn: str,
        served: tuple[Settings, RunningServer, dict[str, PublishFunction]]) -> None:
    settings, _, functions = served
    world: World = make_world(pool, migrated_dsn, ["linkedin_post", "x_thread"], queue=qstash_queue(settings),
                              clock=RealClock())
    for provider in ("linkedin", "x"):
        world.connections.connect(world.workspace_id, provider)  # type: ignore[arg-type]
    functions["publish"] = PublishFunction(publisher=world.publisher, receiver=qstash_receiver(settings),
                                           url=settings.function_url("publish"), tracer=None,
                                           project="muse-test", trace_flush_seconds=1.0)
    world.schedule(["linkedin_post", "x_thread"])
    api = PublicationsApi(publisher=world.publisher)
    due = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0) + timedelta(seconds=1)
    api.reschedule(world.principal, world.row("linkedin")["id"], due)
    api.reschedule(world.principal, world.row("x")["id"], due)
    api.cancel(world.principal, world.row("x")["id"])

    deadline = time.monotonic() + 12
    while time.monotonic() < deadline and world.row("linkedin")["status"] != "published":
        time.sleep(0.2)
    row = world.row("linkedin")
    assert row["status"] == "published", row
    [post] = world.platforms["linkedin"].posts
    assert due <= post["at"] < due + timedelta(seconds=4)
    time.sleep(1.5)
    assert world.platforms["x"].calls == 0 and world.row("x")["status"] == "cancelled"
    assert world.campaign()["status"] == "completed"
