"""`/api/v1/plan/subscription` through the api function as served (functions-framework, real Postgres), its
mandates set up at the PhonePe emulator: what an owner gets back, what a second request or another tier gets,
what a member may do, and what bad input gets."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from shared.db.pool import connect
from shared.db.workspaces import ensure_workspace
from tests.integration import served_api
from tests.integration.served_api import Served, token

served = served_api.served
PATH = "/api/v1/plan/subscription"


def _json(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def test_an_owner_sets_up_a_mandate_sees_it_pending_and_cancels_it(served: Served) -> None:
    client, owner = served.client(), served.member()
    assert _json(client.get(PATH, headers=owner), 200)["subscription"] is None

    created = _json(client.post(PATH, json={"tier": "pro"}, headers=owner), 201)
    assert (created["state"], created["tier"], created["amount_paise"]) == ("pending", "pro", 294_882)
    assert created["monthly_ai_credits"] == 20_000
    page = httpx.get(created["intent_url"])
    assert page.status_code == 200 and "Approve the mandate" in page.text
    again = _json(client.post(PATH, json={"tier": "pro"}, headers=owner), 201)
    assert again["id"] == created["id"]
    other = _json(client.post(PATH, json={"tier": "agency"}, headers=owner), 409)
    assert "cancel it first" in other["error"]["message"]

    status = _json(client.get(PATH, headers=owner), 200)
    assert status["tier"] == "free" and status["subscription"]["id"] == created["id"]
    cancelled = _json(client.delete(PATH, headers=owner), 200)
    assert cancelled["state"] == "failed" and cancelled["intent_url"] is None
    assert "cancelled before" in cancelled["reason"]
    _json(client.delete(PATH, headers=owner), 404)


def test_a_bad_tier_is_a_400_naming_the_field(served: Served) -> None:
    client, owner = served.client(), served.member()
    for body in ({"tier": "free"}, {"tier": "gold"}, {}, {"tier": "pro", "extra": 1}):
        error = _json(client.post(PATH, json=body, headers=owner), 400)["error"]
        assert "tier" in error["message"] or "extra" in error["message"]
    assert _json(client.get(PATH, headers=owner), 200)["subscription"] is None


def test_a_member_reads_but_only_an_owner_changes_how_the_plan_is_paid(served: Served) -> None:
    slug, owner_id, member_id = f"sv-{uuid.uuid4().hex[:10]}", str(uuid.uuid4()), str(uuid.uuid4())
    with connect(served.dsn) as conn, conn.transaction():
        workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=owner_id)
        conn.execute("INSERT INTO public.workspace_members (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                     (workspace_id, member_id))
    client = served.client()
    member = {"Authorization": f"Bearer {token(member_id, workspace_id)}"}
    owner = {"Authorization": f"Bearer {token(owner_id, workspace_id)}"}
    assert "owner" in _json(client.post(PATH, json={"tier": "pro"}, headers=member), 403)["error"]["message"]
    _json(client.post(PATH, json={"tier": "pro"}, headers=owner), 201)
    assert _json(client.get(PATH, headers=member), 200)["subscription"]["state"] == "pending"
    _json(client.delete(PATH, headers=member), 403)
    assert _json(client.get(PATH, headers=member), 200)["subscription"]["state"] == "pending"
