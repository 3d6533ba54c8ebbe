"""Execution schedules a paid campaign's publications; the campaign waits at `publishing` until the last fires.

The step functions run in-process (`tests.integration.harness`) with the execute node's publisher over the
engine's fakes (a connected email channel), and the campaign GET shows the publications and what it waits for.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from shared.api.models import Decision
from shared.publishing.engine import Publisher, PublishPolicy
from tests.integration.harness import Harness, make_settings
from tests.integration.publishing_world import Clock, FakeAssets, FakeConnections, FakePlatform


def test_execution_schedules_and_the_campaign_completes_with_its_last_publication(
        pool: ConnectionPool, migrated_dsn: str) -> None:
    harness = Harness(pool=pool, dsn=migrated_dsn, settings=make_settings(migrated_dsn))
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
    assert publisher.fire(message)["campaign_completed"] is True
    assert harness.row(campaign_id)["status"] == "completed"
    assert len(platforms["email"].posts) == 1
    assert harness.api.get_campaign(principal, campaign_id).publications[0].external_id == "email-1"
