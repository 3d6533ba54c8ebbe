"""The email adapter: Resend (SDK) against the Resend emulator, SES v2 (boto3) against moto's server."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import flask
import httpx
import pytest
from moto.server import ThreadedMotoServer
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.resend import create_app
from infra.local.serve import serve_in_thread
from shared.publishing.adapters._support import utc_now
from shared.publishing.adapters.email import EmailAdapter
from shared.publishing.ports import Credentials, PlatformError, PostRequest
from shared.settings import Settings
from tests.integration.publishing_settings import publishing_settings

SENDER = "news@muse.example"
COPY = {"subject": "Diwali offers inside", "preheader": "Up to 40% off", "cta": "Shop now",
        "body": "Namaste!\n\nOur Diwali <sale> starts today & ends Sunday."}


@pytest.fixture(scope="module")
def resend_url(fresh_database_dsn: str) -> Iterator[str]:
    """The emulator mounted under `/resend`, as the local stack does; yields its base URL."""
    app = create_app(EmulatorConfig(database_url=fresh_database_dsn))
    server = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/resend": app}))
    try:
        yield f"{server.url}/resend"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def settings(resend_url: str, moto_url: str) -> Iterator[Settings]:
    yield publishing_settings(RESEND_API_URL=resend_url, SES_ENDPOINT_URL=moto_url)
    httpx.delete(f"{resend_url}/__emu/faults")


def _credentials(recipients: list[str], api_key: str | None = None, **settings: Any) -> Credentials:
    """A connection with its own API key (the revoke fault revokes every key seen so far)."""
    return Credentials(connection_id=str(uuid.uuid4()), workspace_id=str(uuid.uuid4()), provider="email",
                       account_id=SENDER, access_token=api_key or f"re_test_{uuid.uuid4().hex}",
                       settings={"recipients": recipients, "from_name": "Muse Store",
                                 "unsubscribe_url": "https://muse.example/u/abc", **settings})


def _post(**fields: Any) -> PostRequest:
    return PostRequest(publication_id=str(uuid.uuid4()), provider="email", channel="email", content=COPY,
                       content_hash=hashlib.sha256(repr(COPY).encode()).hexdigest(), **fields)


def _emails(resend_url: str, post: PostRequest) -> list[dict[str, Any]]:
    return [email for email in httpx.get(f"{resend_url}/__emu/posts").json()["posts"]
            if {"name": "publication_id", "value": post.publication_id} in email.get("tags", [])]


def _fault(resend_url: str, **fault: Any) -> None:
    httpx.post(f"{resend_url}/__emu/faults", json=fault).raise_for_status()


def test_each_recipient_gets_one_email_keyed_by_the_publication(settings: Settings, resend_url: str) -> None:
    post = _post()
    result = EmailAdapter(settings).publish(_credentials(["asha@example.in", "ravi@example.in"]), post)
    emails = _emails(resend_url, post)
    assert [email["to"] for email in emails] == [["asha@example.in"], ["ravi@example.in"]]
    assert {email["idempotency_key"] for email in emails} == {post.publication_id}
    first = emails[0]
    assert result.external_id == first["id"] and first["from"] == f"Muse Store <{SENDER}>"
    assert first["headers"] == {"List-Unsubscribe": "<https://muse.example/u/abc>",
                                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert "&lt;sale&gt; starts today &amp; ends Sunday" in first["html"] and "Up to 40% off" in first["html"]


def test_a_timeout_after_create_is_ambiguous_and_reconcile_replays_the_same_emails(settings: Settings,
                                                                                  resend_url: str) -> None:
    post = _post()
    credentials = _credentials(["meera@example.in"])
    _fault(resend_url, route="POST /emails/batch", mode="timeout_after_create", hold_seconds=2.5)
    with pytest.raises(PlatformError) as unknown:
        EmailAdapter(settings).publish(credentials, post)
    assert unknown.value.kind == "ambiguous"
    found = EmailAdapter(settings).reconcile(credentials, post, since=utc_now())
    emails = _emails(resend_url, post)
    assert len(emails) == 1 and found is not None and found.external_id == emails[0]["id"]


def test_a_duplicated_delivery_sends_nothing_twice_and_large_lists_go_in_batches(settings: Settings,
                                                                                resend_url: str) -> None:
    post = _post()
    credentials = _credentials([f"reader{n}@example.in" for n in range(150)])
    first = EmailAdapter(settings).publish(credentials, post)
    again = EmailAdapter(settings).publish(credentials, post)
    emails = _emails(resend_url, post)
    assert again.external_id == first.external_id and len(emails) == 150
    assert {email["idempotency_key"] for email in emails} == {post.publication_id, f"{post.publication_id}/2"}


def test_429_is_retryable_with_retry_after_and_nothing_is_sent(settings: Settings, resend_url: str) -> None:
    post = _post()
    _fault(resend_url, route="POST /emails/batch", mode="429", retry_after_seconds=42)
    with pytest.raises(PlatformError) as throttled:
        EmailAdapter(settings).publish(_credentials(["kiran@example.in"]), post)
    assert throttled.value.kind == "retryable" and throttled.value.retry_after_seconds == 42
    assert _emails(resend_url, post) == []


def test_a_revoked_api_key_needs_reconnect(settings: Settings, resend_url: str) -> None:
    credentials = _credentials(["dev@example.in"], api_key=f"re_revoked_{uuid.uuid4().hex}")
    EmailAdapter(settings).publish(credentials, _post())
    _fault(resend_url, mode="token_revoked")
    with pytest.raises(PlatformError) as revoked:
        EmailAdapter(settings).publish(credentials, _post())
    assert revoked.value.kind == "reconnect" and "API key is invalid" in revoked.value.message


def test_ses_sends_once_per_recipient_and_resumes_after_the_saved_ones(settings: Settings, moto_url: str) -> None:
    aws = {"aws_access_key_id": "AKIALOCALTEST", "region": "ap-south-1"}
    boto3.client("sesv2", region_name="ap-south-1", endpoint_url=moto_url, aws_access_key_id="AKIALOCALTEST",
                 aws_secret_access_key="secret").create_email_identity(EmailIdentity=SENDER)
    credentials = _credentials(["a@example.in", "b@example.in", "c@example.in"], api_key="secret", esp="ses", **aws)
    saved: list[tuple[str, ...]] = []
    first = EmailAdapter(settings).publish(credentials, _post(on_part=saved.append))
    assert len(first.parts) == 3 and saved[-1] == first.parts
    resumed = EmailAdapter(settings).publish(credentials, _post(posted_parts=first.parts[:2]))
    assert resumed.parts[:2] == first.parts[:2] and resumed.parts[2] not in first.parts
    sent = httpx.get(f"{moto_url}/moto-api/data.json").json()["ses"]["Message"]
    assert len(sent) == 4
    with pytest.raises(PlatformError) as unknown:
        EmailAdapter(settings).reconcile(credentials, _post(), since=utc_now())
    assert unknown.value.kind == "ambiguous"


def test_ses_refuses_an_unverified_sender_for_good(settings: Settings) -> None:
    credentials = _credentials(["a@example.in"], api_key="secret", esp="ses", aws_access_key_id="AKIALOCALTEST")
    unverified = Credentials(**{**credentials.__dict__, "account_id": "someone@else.example"})
    with pytest.raises(PlatformError) as rejected:
        EmailAdapter(settings).publish(unverified, _post())
    assert rejected.value.kind == "permanent" and "MessageRejected" in rejected.value.message


def test_a_500_after_create_is_ambiguous_and_the_replay_sends_nothing_more(settings: Settings,
                                                                          resend_url: str) -> None:
    post = _post()
    credentials = _credentials(["nisha@example.in"])
    _fault(resend_url, route="POST /emails/batch", mode="500_after_create")
    with pytest.raises(PlatformError) as failed:
        EmailAdapter(settings).publish(credentials, post)
    assert failed.value.kind == "ambiguous" and failed.value.status == 500
    found = EmailAdapter(settings).reconcile(credentials, post, since=utc_now())
    [email] = _emails(resend_url, post)
    assert found is not None and found.external_id == email["id"]
