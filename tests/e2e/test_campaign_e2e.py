"""A campaign over HTTP, each function in its own process, QStash/Gemini/Tavily/PhonePe emulated on the wire."""

from __future__ import annotations

import hashlib
import json
import re
import time

import httpx
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def _pay(stack: Stack, auth: dict[str, str], campaign_id: str, outcome: str = "success") -> dict:
    order = stack.checkout(auth, campaign_id)
    response = stack.http.post(order["redirect_url"], data={"outcome": outcome}, follow_redirects=False)
    assert response.status_code in (200, 302), response.text
    return order


def _node_runs(stack: Stack, campaign_id: str) -> dict[str, int]:
    rows = stack.db("SELECT data->>'node' AS node FROM public.campaign_events "
                    "WHERE campaign_id = %s AND type = 'step.completed'", campaign_id)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["node"]] = counts.get(r["node"], 0) + 1
    return counts


def _events(stack: Stack, auth: dict[str, str], campaign_id: str, last_id: int = 0) -> list[tuple[int, str]]:
    headers = {**auth, "Last-Event-ID": str(last_id)}
    out = []
    with stack.http.stream("GET", f"{stack.api}/api/v1/campaigns/{campaign_id}/events", headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event_id = 0
        for line in r.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("event: "):
                out.append((event_id, line[7:]))
    return out


def test_full_campaign_over_http(stack: Stack) -> None:
    """Create → research → strategy → approve → content → QA → checkout → pay → webhook → execute."""
    auth = stack.new_workspace()
    campaign_id = stack.create(auth, channels=["email", "ad"], budget_inr=5000)
    view = stack.wait_for(auth, campaign_id, "awaiting_decision")
    assert view["pending_decision"]["kind"] == "strategy_approval"
    assert view["pending_decision"]["payload"]["budget_inr"] == 5000
    stack.decide(auth, campaign_id, "approve")
    view = stack.wait_for(auth, campaign_id, "awaiting_payment")
    assert view["pending_decision"]["payload"]["amount_paise"] == 500_000
    order = _pay(stack, auth, campaign_id)
    view = stack.wait_for(auth, campaign_id, "completed")
    assert sorted(a["channel"] for a in view["artifacts"]) == ["ad", "email"]
    assert all(a["status"] == "published" and a["content"] for a in view["artifacts"])
    assert all(a["usage"]["output_tokens"] > 0 for a in view["artifacts"])
    usage = view["usage"]
    assert usage["calls"] >= 6 and usage["output_tokens"] == sum(u["output_tokens"] for u in usage["by_node"])
    assert {"plan", "strategy", "content:ad", "content:email"} <= {u["node"] for u in usage["by_node"]}
    assert view["payment"]["state"] == "completed"
    assert view["payment"]["merchant_order_id"] == order["merchant_order_id"]
    runs = _node_runs(stack, campaign_id)
    specialists, reviews = runs.pop("specialist"), runs.pop("review")
    assert runs == {"plan": 1, "summarize": 1, "strategy": 1, "approve_strategy": 1, "brief": 1, "content": 1,
                    "qa_gate": 1, "await_payment": 1, "execute": 1}
    assert specialists >= 2 and 1 <= reviews <= 2
    events = _events(stack, auth, campaign_id)
    types = [t for _, t in events]
    assert types[0] == "campaign.created" and types[-1] == "campaign.completed"
    middle = events[len(events) // 2][0]
    assert _events(stack, auth, campaign_id, last_id=middle) == [e for e in events if e[0] > middle]
    gemini = stack.emulator("GET", "/gemini/_emulator/requests")
    assert any("[emulated" in json.dumps(a["content"]) for a in view["artifacts"]) and gemini


def test_reject_with_feedback_replans_then_approve(stack: Stack) -> None:
    auth = stack.new_workspace()
    campaign_id = stack.create(auth, channels=["linkedin_post"])
    first = stack.wait_for(auth, campaign_id, "awaiting_decision")["pending_decision"]["id"]
    stack.decide(auth, campaign_id, "reject", feedback="Aim at corporate gifting teams instead")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        view = stack.campaign(auth, campaign_id)
        if view["status"] == "awaiting_decision" and view["pending_decision"]["id"] != first:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no new strategy decision after the rejection")
    assert _node_runs(stack, campaign_id)["plan"] == 2
    prompts = [r["text"] for r in stack.emulator("GET", "/gemini/_emulator/requests")
               if "corporate gifting teams" in r.get("text", "")]
    assert prompts, "the re-plan did not carry the feedback to the model"
    stack.decide(auth, campaign_id, "approve")
    stack.wait_for(auth, campaign_id, "awaiting_payment")


def test_every_message_delivered_three_times_concurrently_advances_once(stack: Stack) -> None:
    auth = stack.new_workspace()
    stack.emulator("POST", "/qstash/_emulator/duplicates", json={"times": 3})
    try:
        campaign_id = stack.create(auth, channels=["email", "x_thread"])
        stack.wait_for(auth, campaign_id, "awaiting_decision")
        stack.decide(auth, campaign_id, "approve")
        stack.wait_for(auth, campaign_id, "awaiting_payment")
        _pay(stack, auth, campaign_id)
        stack.wait_for(auth, campaign_id, "completed")
    finally:
        stack.emulator("POST", "/qstash/_emulator/duplicates", json={"times": 1})
    runs = _node_runs(stack, campaign_id)
    specialists = stack.db("SELECT data->>'specialist' AS s, count(*) AS n FROM public.campaign_events "
                           "WHERE campaign_id = %s AND data->>'node' = 'specialist' GROUP BY 1", campaign_id)
    assert specialists and all(r["n"] == 1 for r in specialists), specialists
    reviews = runs.pop("review")
    runs.pop("specialist")
    assert set(runs.values()) == {1} and 1 <= reviews <= 2, runs
    assert len(stack.db("SELECT 1 FROM public.artifacts WHERE campaign_id = %s", campaign_id)) == 2
    assert len(stack.db("SELECT 1 FROM public.payments WHERE campaign_id = %s", campaign_id)) == 1
    forks = stack.db("SELECT parent_checkpoint_id, count(*) FROM public.checkpoints WHERE thread_id = %s "
                     "GROUP BY 1 HAVING count(*) > 1", campaign_id)
    assert forks == []


def test_killed_mid_step_then_retried_completes_without_duplicate_effects(stack: Stack) -> None:
    auth = stack.new_workspace()
    campaign_id = stack.create(auth, channels=["ad", "email"])
    stack.wait_for(auth, campaign_id, "awaiting_decision")
    marker = "Write email copy"
    stack.emulator("POST", "/gemini/_emulator/script", json={"rules": [
        {"match": {"contains": marker}, "delay_seconds": 30, "times": 1, "response": {"json": {
            "subject": "s", "preheader": "p", "body": "b", "cta": "c"}}}]})
    stack.decide(auth, campaign_id, "approve")
    content = stack.functions["content"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ad = stack.db("SELECT 1 FROM public.artifacts WHERE campaign_id = %s AND channel = 'ad'", campaign_id)
        hung = [r for r in stack.emulator("GET", "/gemini/_emulator/requests") if marker in r.get("text", "")]
        if ad and hung:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the content step never reached the email call")
    content.kill()
    content.start()
    stack.wait_for(auth, campaign_id, "awaiting_payment", timeout=90)
    _pay(stack, auth, campaign_id)
    view = stack.wait_for(auth, campaign_id, "completed")
    assert sorted(a["channel"] for a in view["artifacts"]) == ["ad", "email"]
    assert {a["revision"] for a in view["artifacts"]} == {1}
    assert _node_runs(stack, campaign_id)["content"] == 1
    orders = [o for o in stack.emulator("GET", "/phonepe/_emulator/orders")["orders"]
              if o["merchant_order_id"].startswith(f"MUSE-{campaign_id.replace('-', '')[:24]}")]
    assert len(orders) == 1


def test_forged_qstash_signature_is_401_and_changes_nothing(stack: Stack) -> None:
    auth = stack.new_workspace()
    campaign_id = stack.create(auth)
    view = stack.wait_for(auth, campaign_id, "awaiting_decision")
    before = stack.db("SELECT count(*) AS n FROM public.checkpoints WHERE thread_id = %s", campaign_id)
    body = json.dumps({"kind": "resume", "campaign_id": campaign_id, "decision_id": view["pending_decision"]["id"],
                       "resume": {"action": "approve"}})
    import jwt

    forged = jwt.encode({"iss": "Upstash", "sub": stack.functions["planner"].url, "exp": int(time.time()) + 60,
                         "nbf": int(time.time()), "body": "x"}, "sig_not_the_real_key_00000000000000", "HS256")
    for signature in (forged, None):
        headers = {"Content-Type": "application/json"} | ({"Upstash-Signature": signature} if signature else {})
        response = httpx.post(stack.functions["planner"].url, content=body, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert stack.db("SELECT count(*) AS n FROM public.checkpoints WHERE thread_id = %s", campaign_id) == before
    assert stack.campaign(auth, campaign_id)["status"] == "awaiting_decision"


def test_webhook_with_wrong_authorization_or_disagreeing_status_does_not_advance(stack: Stack) -> None:
    auth = stack.new_workspace()
    campaign_id = stack.create(auth, channels=["ad"], budget_inr=2500)
    stack.wait_for(auth, campaign_id, "awaiting_decision")
    stack.decide(auth, campaign_id)
    stack.wait_for(auth, campaign_id, "awaiting_payment")
    order = stack.checkout(auth, campaign_id)
    merchant_order_id = order["merchant_order_id"]
    webhook = stack.functions["phonepe_webhook"].url
    payload = {"event": "checkout.order.completed", "payload": {"merchantOrderId": merchant_order_id,
                                                                "state": "COMPLETED", "amount": 250_000}}
    wrong = hashlib.sha256(b"someone:else").hexdigest()
    assert httpx.post(webhook, json=payload, headers={"Authorization": wrong}).status_code == 401
    assert httpx.post(webhook, json=payload).status_code == 401
    stack.emulator("POST", f"/phonepe/_emulator/orders/{merchant_order_id}/override", json={"amount": 100})
    stack.http.post(order["redirect_url"], data={"outcome": "success"}, follow_redirects=False)
    deadline = time.monotonic() + 20
    while not stack.db("SELECT 1 FROM public.campaign_events WHERE campaign_id = %s AND type = 'payment.mismatch'",
                       campaign_id):
        assert time.monotonic() < deadline, "the amount mismatch was never recorded"
        time.sleep(0.1)
    time.sleep(2.5)
    assert stack.campaign(auth, campaign_id)["status"] == "awaiting_payment"
    stack.emulator("POST", f"/phonepe/_emulator/orders/{merchant_order_id}/override",
                   json={"state": "PENDING", "amount": None})
    stack.emulator("POST", f"/phonepe/_emulator/orders/{merchant_order_id}/webhook",
                   json={"event": "checkout.order.completed", "state": "COMPLETED"})
    time.sleep(2.5)
    assert stack.campaign(auth, campaign_id)["status"] == "awaiting_payment"
    stack.emulator("POST", f"/phonepe/_emulator/orders/{merchant_order_id}/override", json={"state": None})
    stack.wait_for(auth, campaign_id, "completed")
    for _ in range(2):
        stack.emulator("POST", f"/phonepe/_emulator/orders/{merchant_order_id}/webhook",
                       json={"event": "checkout.order.completed"})
    time.sleep(1.5)
    assert _node_runs(stack, campaign_id)["execute"] == 1
    assert stack.campaign(auth, campaign_id)["payment"]["state"] == "completed"


def test_another_workspace_gets_404(stack: Stack) -> None:
    owner, stranger = stack.new_workspace(), stack.new_workspace()
    campaign_id = stack.create(owner)
    base = f"{stack.api}/api/v1/campaigns/{campaign_id}"
    assert stack.http.get(base, headers=stranger).status_code == 404
    assert stack.http.get(f"{base}/events", headers=stranger).status_code == 404
    assert stack.http.post(f"{base}/checkout", headers=stranger).status_code == 404
    decision = stack.http.post(f"{base}/decisions", headers=stranger, json={"decision_id": "x", "action": "approve"})
    assert decision.status_code == 404
    assert stack.http.get(base, headers=owner).status_code == 200


def test_bad_requests_get_clear_4xx_json(stack: Stack) -> None:
    auth = stack.new_workspace()
    url = f"{stack.api}/api/v1/campaigns"
    missing = stack.http.post(url, json={"kind": "campaign", "brief": {"title": "x"}}, headers=auth)
    assert missing.status_code == 400 and "brief.objective" in missing.json()["error"]["message"]
    wrong_kind = stack.http.post(url, json={"kind": "blitz", "brief": {"title": "x", "objective": "y"}}, headers=auth)
    assert wrong_kind.status_code == 400 and "kind" in wrong_kind.json()["error"]["message"]
    assert stack.http.post(url, content=b"{", headers={**auth, "Content-Type": "application/json"}).status_code == 400
    assert stack.http.post(url, json={}, headers={}).status_code == 401
    expired = stack.http.get(f"{url}/not-a-uuid", headers=auth)
    assert expired.status_code == 400 and "UUID" in expired.json()["error"]["message"]
    reject = stack.http.post(f"{url}/{stack.create(auth)}/decisions", headers=auth,
                             json={"decision_id": "d", "action": "reject"})
    assert reject.status_code == 400 and "feedback" in reject.json()["error"]["message"]
    spec = stack.http.get(f"{stack.api}/api/v1/openapi.json").json()
    assert {"/api/v1/campaigns", "/api/v1/campaigns/{campaign_id}/events", "/api/v1/knowledge/search",
            "/api/v1/brand-kit", "/api/v1/qa/check"} <= set(spec["paths"])
    refs = {m.group(1) for m in re.finditer(r'"#/components/schemas/([^"]+)"', json.dumps(spec))}
    assert refs <= set(spec["components"]["schemas"]), refs - set(spec["components"]["schemas"])


def test_the_sweeper_runs_on_its_schedule_and_publishes_what_a_crash_left(stack: Stack) -> None:
    """The `muse-sweeper` QStash schedule reaches the sweeper function, which publishes a stranded outbox row."""
    from qstash import QStash

    from shared.runtime.sweeper import SCHEDULE_ID

    auth = stack.new_workspace()
    campaign_id = stack.create(auth, channels=["email"])
    stack.wait_for(auth, campaign_id, "awaiting_decision")
    pending = stack.campaign(auth, campaign_id)["pending_decision"]
    message = {"version": 1, "kind": "resume", "campaign_id": campaign_id, "decision_id": pending["id"],
               "resume": {"action": "approve", "source": "user", "decision_id": pending["id"]}}
    stack.db("INSERT INTO public.decisions (id, campaign_id, workspace_id, kind, action, payload, source) "
             "SELECT %s, id, workspace_id, 'strategy_approval', 'approve', %s, 'user' FROM public.campaigns "
             "WHERE id = %s RETURNING id", pending["id"], json.dumps(message["resume"]), campaign_id)
    stack.db("INSERT INTO public.step_outbox (campaign_id, function, message, dedup_id, created_at) "
             "VALUES (%s, 'planner', %s, %s, now() - interval '1 minute') RETURNING id",
             campaign_id, json.dumps(message), f"stranded-{campaign_id}")
    stack.wait_for(auth, campaign_id, "awaiting_payment", timeout=60)
    client = QStash(stack.env["QSTASH_TOKEN"], base_url=stack.env["QSTASH_URL"])
    schedule = client.schedule.get(SCHEDULE_ID)
    assert schedule.destination == stack.env_url("sweeper") and schedule.cron == "* * * * *"
    assert "SUCCESS" in {state.value for state in (schedule.last_schedule_states or {}).values()}, schedule
    [row] = stack.db("SELECT published_at FROM public.step_outbox WHERE dedup_id = %s", f"stranded-{campaign_id}")
    assert row["published_at"] is not None
