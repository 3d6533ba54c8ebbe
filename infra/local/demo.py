"""`make demo`: one campaign end to end on the local stack, shown step by step.

Starts the stack (unless `--base-url` points at a running one), signs in to the seeded demo
workspace, creates a campaign, follows its event stream, approves the strategy, pays through the
PhonePe emulator's payment page, and prints the final artifacts. `--language ta` (`make demo LANGUAGE=ta`)
runs it in one of the 14 languages, targeting a state where it is spoken (regional festivals join).

Before the campaign it connects the workspace's channels through the emulators exactly as a marketer would:
LinkedIn, X and Meta by OAuth (the emulators' authorize pages approve when followed, and the callback exchanges
the code), email (Resend) by API key. Once the campaign is funded, its publications are scheduled at each
channel's default slot; the demo moves them to now (`PATCH /api/v1/publications/{id}`) and prints each post's URL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from infra.local.embedded import stop_unowned
from infra.local.stack import REPO_ROOT, exit_on_signals, ignore_signals

BRIEF = {
    "kind": "campaign",
    "brief": {
        "title": "Diwali gifting push for the Festive Gift Box",
        "objective": "Sell 3,000 Festive Gift Boxes in the three weeks before Diwali to urban professionals.",
        "audience": "Tea lovers aged 25-40 in Bengaluru, Mumbai, Pune and Delhi NCR",
        "channels": ["email", "linkedin_post", "x_thread", "instagram_caption", "ad"],
        "budget_inr": 20000,
    },
}


LANGUAGE_STATES: dict[str, list[str]] = {
    "en": [], "hi": ["DL", "UP"], "mr": ["MH"], "ne": ["SK"], "bn": ["WB"], "as": ["AS"], "pa": ["PB"], "gu": ["GJ"],
    "or": ["OD"], "ta": ["TN"], "te": ["TS", "AP"], "kn": ["KA"], "ml": ["KL"], "ur": ["JK"],
}
"""Where the demo campaign runs for each language (the brief's `target_states`)."""


def brief_for(language: str) -> dict[str, Any]:
    """The demo's request body, written in `language` for the states where it is spoken."""
    brief = {**BRIEF["brief"], "language": language, "target_states": LANGUAGE_STATES[language]}  # type: ignore[dict-item]
    return {**BRIEF, "brief": brief}


def sse(client: httpx.Client, url: str, headers: dict[str, str], last_id: int) -> Iterator[tuple[int, str, Any]]:
    """Events of one SSE connection as (id, type, data)."""
    with client.stream("GET", url, headers={**headers, "Last-Event-ID": str(last_id)}, timeout=60) as response:
        response.raise_for_status()
        event_id, event_type, data = last_id, "", ""
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("event: "):
                event_type = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and event_type:
                yield event_id, event_type, json.loads(data)
                event_type, data = "", ""


OAUTH_CHANNELS = ("linkedin", "x", "meta")
EMAIL_CONNECTION = {"api_key": "re_local_demo_key", "from_address": "hello@chai-co.in", "from_name": "Chai & Co",
                    "recipients": ["asha@example.in", "vikram@example.in", "meera@example.in"]}


def connect_channels(client: httpx.Client, auth: dict[str, str]) -> None:
    """Connect LinkedIn, X and Meta by OAuth through the emulators' authorize pages, and email by API key."""
    for provider in OAUTH_CHANNELS:
        started = client.post(f"/api/v1/channels/{provider}/connect", headers=auth)
        started.raise_for_status()
        callback = client.get(started.json()["authorization_url"], follow_redirects=True)
        callback.raise_for_status()
        view = callback.json()
        print(f"Connected {provider}: {view['account_name'] or view['account_id']} ({view['status']})")
    email = client.post("/api/v1/channels/email/connect", headers=auth, json=EMAIL_CONNECTION)
    email.raise_for_status()
    print(f"Connected email (Resend): {email.json()['account_id']} → {len(EMAIL_CONNECTION['recipients'])} recipients")


def publish_now(client: httpx.Client, auth: dict[str, str], campaign_id: str) -> None:
    """Move the campaign's scheduled publications to a few seconds from now (they were at each channel's slot)."""
    view = client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).json()
    soon = datetime.now(UTC) + timedelta(seconds=3)
    for publication in view.get("publications") or []:
        if publication["status"] != "scheduled":
            continue
        moved = client.patch(f"/api/v1/publications/{publication['id']}", headers=auth,
                             json={"scheduled_at": soon.isoformat()})
        print(f"  → {publication['provider']}: slot {publication['scheduled_at']} moved to now "
              f"({moved.status_code})")


def show_publications(view: dict[str, Any]) -> None:
    """Each publication's outcome and the post's URL."""
    publications = view.get("publications") or []
    if not publications:
        return
    print("\nPublications:")
    for publication in publications:
        where = publication.get("url") or publication.get("error") or publication.get("waiting_reason") or ""
        print(f"  {publication['provider']:<10} {publication['channel']:<18} {publication['status']:<11} {where}")


def show(event_type: str, data: dict[str, Any]) -> None:
    """Print one event in a readable way."""
    body = data.get("data", {})
    if event_type == "step.completed":
        detail = {k: v for k, v in body.items() if k not in ("node", "function")}
        print(f"  ✓ {body.get('function')}/{body.get('node')}: {json.dumps(detail, ensure_ascii=False)[:300]}")
    else:
        print(f"  • {event_type}: {json.dumps(body, ensure_ascii=False)[:300]}")


def run(base: str, token: str, language: str = "en") -> int:
    """Drive one campaign; returns the process exit code."""
    auth = {"Authorization": f"Bearer {token}"}
    body = brief_for(language)
    with httpx.Client(base_url=base, timeout=30) as client:
        connect_channels(client, auth)
        created = client.post("/api/v1/campaigns", json=body, headers=auth)
        created.raise_for_status()
        campaign_id = created.json()["id"]
        print(f"Campaign {campaign_id} created: {body['brief']['title']} (language {language}"
              + (f", states {', '.join(body['brief']['target_states'])})" if body["brief"]["target_states"] else ")"))
        events_url = f"/api/v1/campaigns/{campaign_id}/events"
        last_id, done, deadline = 0, False, time.monotonic() + 300
        while not done and time.monotonic() < deadline:
            for event_id, event_type, data in sse(client, events_url, auth, last_id):
                last_id = event_id
                show(event_type, data)
                if event_type == "decision.requested":
                    decision = data["data"]
                    budget = decision["payload"].get("budget_inr")
                    print(f"  → approving {decision['kind']}" + (f" (budget ₹{budget:,})" if budget else ""))
                    client.post(f"/api/v1/campaigns/{campaign_id}/decisions", headers=auth,
                                json={"decision_id": decision["decision_id"], "action": "approve"}).raise_for_status()
                elif event_type == "payment.requested":
                    checkout = client.post(f"/api/v1/campaigns/{campaign_id}/checkout", headers=auth)
                    checkout.raise_for_status()
                    order = checkout.json()
                    print(f"  → paying ₹{order['amount_paise'] / 100:,.2f} at {order['redirect_url']}")
                    paid = client.post(order["redirect_url"], data={"outcome": "success"}, follow_redirects=False)
                    print(f"  → PhonePe emulator payment page answered {paid.status_code}")
                elif event_type == "step.completed" and data.get("data", {}).get("node") == "execute":
                    publish_now(client, auth, campaign_id)
                elif event_type in ("campaign.completed", "campaign.failed", "decision.expired"):
                    done = True
                    break
        view = client.get(f"/api/v1/campaigns/{campaign_id}", headers=auth).json()
    print(f"\nStatus: {view['status']}" + (f" ({view['failure_reason']})" if view.get("failure_reason") else ""))
    for artifact in view["artifacts"]:
        print(f"\n=== {artifact['channel']} [{artifact['status']}, revision {artifact['revision']}, "
              f"model {artifact['model']}, {artifact['usage'].get('output_tokens')} output tokens] ===")
        for name, value in artifact["content"].items():
            print(f"{name}: {value}")
    if view.get("payment"):
        print(f"\nPayment: {view['payment']['merchant_order_id']} {view['payment']['state']}")
    show_publications(view)
    return 0 if view["status"] == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".muse")
    parser.add_argument("--language", choices=sorted(LANGUAGE_STATES), default="en",
                        help="the campaign's language (copy in its own script)")
    args = parser.parse_args(argv)
    exit_on_signals()
    stack = None
    base = args.base_url or f"http://127.0.0.1:{args.port}"
    try:
        if args.base_url is None:
            with open(args.data_dir.parent / ".muse-stack.log", "w") as log:
                stack = subprocess.Popen(
                    [sys.executable, "-m", "infra.local.stack", "--port", str(args.port), "--data-dir",
                     str(args.data_dir), "--exit-with-parent"],
                    cwd=REPO_ROOT, stdout=log, stderr=log, start_new_session=True)
            print(f"Starting the local stack on {base} (log: {log.name}) …")
        for _ in range(300):
            try:
                if httpx.get(f"{base}/api/v1/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if stack is not None and stack.poll() is not None:
                print("The local stack exited; see its log.")
                return 1
            time.sleep(0.2)
        token = subprocess.run([sys.executable, "-m", "infra.local.token", "--data-dir", str(args.data_dir)],
                               cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout.strip()
        return run(base, token, args.language)
    except KeyboardInterrupt:
        print("\nInterrupted.")
        return 130
    finally:
        ignore_signals()
        if stack is not None:
            stop_stack(stack, args.data_dir)


def stop_stack(stack: subprocess.Popen[bytes], data_dir: Path) -> None:
    """Stop the stack this demo started and everything it runs (SIGKILL after 30 s, then any left-over server).

    The stack runs in its own session, so Ctrl-C reaches only the demo, which stops the stack exactly once;
    the stack stops itself if the demo is killed outright (`--exit-with-parent`).
    """
    try:
        stack.terminate()
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stack.kill()
            stack.wait(timeout=10)
    finally:
        stop_unowned(data_dir)


if __name__ == "__main__":
    sys.exit(main())
