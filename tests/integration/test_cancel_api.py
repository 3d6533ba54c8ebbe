"""`POST /api/v1/campaigns/{id}/cancel` through the served API function: answers, errors and their JSON bodies."""

from __future__ import annotations

import uuid

from shared.db.pool import connect
from tests.integration import served_api
from tests.integration.served_api import Served

served = served_api.served
BRIEF = {"title": "Diwali teaser", "objective": "Warm up the list", "channels": ["email"]}


def _campaign(served: Served, member: dict[str, str]) -> str:
    response = served.client().post("/api/v1/campaigns", json={"kind": "move", "brief": BRIEF}, headers=member)
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def test_cancel_is_200_and_the_same_when_repeated(served: Served) -> None:
    """A queued campaign is cancelled before payment; the repeat answers the same cancel; GET shows it."""
    member = served.member()
    campaign_id = _campaign(served, member)
    first = served.client().post(f"/api/v1/campaigns/{campaign_id}/cancel", headers=member)
    assert first.status_code == 200, first.get_data(as_text=True)
    body = first.get_json()
    assert (body["status"], body["stage"], body["refund"], body["campaign_id"]) == (
        "cancelled", "before_payment", None, campaign_id)
    again = served.client().post(f"/api/v1/campaigns/{campaign_id}/cancel/", headers=member)
    assert again.status_code == 200 and again.get_json() == body
    view = served.client().get(f"/api/v1/campaigns/{campaign_id}", headers=member).get_json()
    assert view["status"] == "cancelled"
    listed = served.client().get("/api/v1/campaigns?status=cancelled", headers=member).get_json()
    assert [item["id"] for item in listed["items"]] == [campaign_id]


def test_an_ended_campaign_is_a_409_naming_its_status(served: Served) -> None:
    member = served.member()
    campaign_id = _campaign(served, member)
    with connect(served.dsn) as conn:
        conn.execute("UPDATE public.campaigns SET status = 'expired' WHERE id = %s", (campaign_id,))
    response = served.client().post(f"/api/v1/campaigns/{campaign_id}/cancel", headers=member)
    assert response.status_code == 409 and response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "conflict" and "'expired'" in error["message"]
    assert error["details"] == {"status": "expired"}


def test_bad_ids_unknown_and_foreign_campaigns(served: Served) -> None:
    """Not a UUID: 400 naming the field; no such campaign or another workspace's: 404; no token: 401."""
    member, stranger = served.member(), served.member()
    campaign_id = _campaign(served, member)
    bad = served.client().post("/api/v1/campaigns/not-a-uuid/cancel", headers=member)
    assert bad.status_code == 400 and bad.get_json()["error"]["details"] == {"field": "campaign_id"}
    assert served.client().post(f"/api/v1/campaigns/{uuid.uuid4()}/cancel", headers=member).status_code == 404
    assert served.client().post(f"/api/v1/campaigns/{campaign_id}/cancel", headers=stranger).status_code == 404
    assert served.client().post(f"/api/v1/campaigns/{campaign_id}/cancel").status_code == 401
    with connect(served.dsn) as conn:
        status = conn.execute("SELECT status FROM public.campaigns WHERE id = %s", (campaign_id,)).fetchone()
    assert status["status"] == "queued"
