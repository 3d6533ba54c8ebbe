"""Execution schedules a paid campaign's publications; the campaign waits at `publishing` until the last fires.

The step functions run in-process (`tests.integration.harness`) with the execute node's publisher over the
engine's fakes (a connected email channel), and the campaign GET shows the publications and what it waits for;
the `publish` function that completes the campaign ends its LangSmith root run (the emulator's collector).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import langsmith
import pytest
from psycopg_pool import ConnectionPool

from infra.local.emulators import langsmith as collector
from infra.local.emulators.config import DEV_QSTASH_CURRENT_SIGNING_KEY, EmulatorConfig
from infra.local.emulators.qstash import sign
from infra.local.serve import RunningServer, serve_in_thread
from shared.api.models import Decision
from shared.publishing.engine import Publisher, PublishPolicy
from shared.publishing.function import PublishFunction
from shared.queue import qstash_receiver
from tests.integration.harness import Harness, make_settings
from tests.integration.publishing_world import Clock, FakeAssets, FakeConnections, FakePlatform

PROJECT = "muse-publishing-tests"
KEY = EmulatorConfig(database_url="").langsmith_api_key


@pytest.fixture(scope="module")
def langsmith_server() -> Iterator[RunningServer]:
    running = serve_in_thread(collector.create_app(EmulatorConfig(database_url="")))
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.filterwarnings("ignore:read_run\\(\\) is deprecated:DeprecationWarning")
def test_execution_schedules_and_the_campaign_completes_with_its_last_publication(
        pool: ConnectionPool, migrated_dsn: str, langsmith_server: RunningServer) -> None:
    harness = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn, LANGSMITH_PROJECT=PROJECT))
    tracer = langsmith.Client(api_url=langsmith_server.url, api_key=KEY)
    harness.api.tracer = tracer
    principal = harness.workspace()
    workspace_id = principal.claims["app_metadata"]["workspace_id"]
    clock = Clock(now=datetime.now(UTC))
    platforms = {p: FakePlatform(p, clock) for p in ("email", "whatsapp")}
    connections = FakeConnections(platforms)  # type: ignore[arg-type]
    connections.connect(workspace_id, "email", settings={"recipients": ["a@example.in"]})
    publisher = Publisher(pool=pool, adapters=platforms.__getitem__, credentials=connections, assets=FakeAssets(),
                          clock=clock, queue=harness.queue, policy=PublishPolicy())
    for runtime in harness.runtimes.values():
        runtime.deps = dataclasses.replace(runtime.deps, publishing=publisher)
    campaign_id = harness.create(principal)
    harness.pump()
    pending = harness.row(campaign_id)["pending_decision"]
    harness.api.decide(principal, campaign_id, Decision(decision_id=pending["id"], action="approve"))
    harness.pump()
    harness.pay(principal, campaign_id)
    row = harness.row(campaign_id)
    assert (row["status"], row["current_step"]) == ("running", "publishing")
    assert harness.events(campaign_id)[-1] == "campaign.publishing"
    view = harness.api.get_campaign(principal, campaign_id)
    assert [(p.channel, p.provider, p.status) for p in view.publications] == [("email", "email", "scheduled")]
    assert view.waiting_for[0].startswith("scheduled: email at ")
    [(message, _)] = [(m, d) for f, m, d in harness.queue.published if f == "publish"]
    clock.now = view.publications[0].scheduled_at
    function = PublishFunction(publisher=publisher, receiver=qstash_receiver(harness.settings),
                               url=harness.settings.function_url("publish"), tracer=tracer, project=PROJECT,
                               trace_flush_seconds=3.0)
    body = json.dumps(message.model_dump(mode="json")).encode()
    reply = function.handle(body, sign(body, harness.settings.function_url("publish"),
                                       DEV_QSTASH_CURRENT_SIGNING_KEY))
    assert reply.body["campaign_completed"] is True
    assert harness.row(campaign_id)["status"] == "completed"
    root = tracer.read_run(campaign_id)
    assert root.end_time is not None and root.outputs == {"status": "completed"}, root
    assert len(platforms["email"].posts) == 1
    assert harness.api.get_campaign(principal, campaign_id).publications[0].external_id == "email-1"
