"""The WhatsApp adapter (pywa) against the Cloud API emulator over HTTP, mounted as the local stack mounts it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import flask
import httpx
import pytest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators import whatsapp as emulator
from infra.local.emulators.config import EmulatorConfig
from infra.local.serve import RunningServer, serve_in_thread
from shared.publishing.adapters.whatsapp import WhatsAppAdapter, adapter
from shared.publishing.ports import Credentials, PlatformError, PostRequest
from tests.integration.harness import make_settings

RECIPIENTS = ["919800000001", "+919800000002", "919800000003"]


@pytest.fixture(scope="module")
def server(fresh_database_dsn: str) -> Iterator[str]:
    app = DispatcherMiddleware(flask.Flask("root"),
                               {"/whatsapp": emulator.create_app(EmulatorConfig(database_url=fresh_database_dsn))})
    running: RunningServer = serve_in_thread(app)
    try:
        yield f"{running.url}/whatsapp"
    finally:
        running.stop()


@pytest.fixture
def wa(server: str) -> Iterator[str]:
    """The emulator's base URL; faults cleared and the token restored after each test."""
    yield server
    httpx.delete(f"{server}/__emu/faults")
    httpx.post(f"{server}/__emu/token/restore")


def _adapter(base: str) -> WhatsAppAdapter:
    return adapter(make_settings("postgresql://unused", WHATSAPP_GRAPH_URL=base, MUSE_META_TIMEOUT_SECONDS="1"),
                   "whatsapp")


def _credentials(**settings: Any) -> Credentials:
    return Credentials(connection_id=str(uuid.uuid4()), workspace_id=str(uuid.uuid4()), provider="whatsapp",
                       account_id=emulator.PHONE_NUMBER_ID, access_token=emulator.LOCAL_WHATSAPP_TOKEN,
                       settings={"template": "muse_campaign", "template_language": "en", "recipients": RECIPIENTS,
                                 **settings})


def _post(text: str = "Diwali lamps, 20% off this week", **kwargs: Any) -> PostRequest:
    return PostRequest(publication_id=str(uuid.uuid4()), provider="whatsapp", channel="whatsapp",
                       content={"text": text}, content_hash="h", **kwargs)


def _sent(base: str, publication_id: str) -> list[dict[str, Any]]:
    posts = httpx.get(f"{base}/__emu/posts").json()["posts"]
    return [p for p in posts if p["biz_opaque_callback_data"] == publication_id]


def test_template_goes_to_every_opted_in_recipient_tagged_with_the_publication(wa: str) -> None:
    """One approved template per recipient, the copy as its body parameter, the publication id as tracker."""
    post = _post()
    reported: list[tuple[str, ...]] = []
    result = _adapter(wa).publish(_credentials(), PostRequest(**{**post.__dict__, "on_part": reported.append}))
    sent = _sent(wa, post.publication_id)
    assert sorted(m["to"] for m in sent) == sorted(r.lstrip("+") for r in RECIPIENTS)
    assert {m["template"]["name"] for m in sent} == {"muse_campaign"}
    assert sent[0]["template"]["language"] == {"code": "en"}
    assert sent[0]["template"]["components"][0]["parameters"] == [{"type": "text", "text": post.content["text"]}]
    assert result.external_id.startswith("wamid.") and len(result.parts) == 3
    assert [len(parts) for parts in reported] == [1, 2, 3] and reported[-1] == result.parts
    assert {m["wamid"] for m in sent} == {part.split(":", 1)[1] for part in result.parts}


@pytest.mark.parametrize("language", ["ta", "or", "as"])
def test_indian_template_languages_go_out_as_given(wa: str, language: str) -> None:
    """Odia and Assamese, which pywa 4.5 does not list, reach the wire as `or` / `as`, not `UNKNOWN`."""
    post = _post("ଦୀପାବଳି ଅଫର")
    _adapter(wa).publish(_credentials(template="muse_offer", template_language=language,
                                      recipients=RECIPIENTS[:1]), post)
    assert [m["template"]["language"] for m in _sent(wa, post.publication_id)] == [{"code": language}]


def test_throttled_halfway_resumes_without_sending_twice(wa: str) -> None:
    """Recipient 1 reached, then 130429-style throttling: retryable; the next attempt, given the reported parts,
    sends only to the others."""
    post = _post()
    reported: list[tuple[str, ...]] = []
    first = PostRequest(**{**post.__dict__, "on_part": reported.append})
    _adapter(wa).publish(_credentials(recipients=RECIPIENTS[:1]), first)
    httpx.post(f"{wa}/__emu/faults", json={"route": "messages", "mode": "429", "times": 1})
    with pytest.raises(PlatformError) as failure:
        _adapter(wa).publish(_credentials(), PostRequest(**{**first.__dict__, "posted_parts": reported[-1]}))
    assert failure.value.kind == "retryable" and failure.value.status == 429
    assert len(_sent(wa, post.publication_id)) == 1
    result = _adapter(wa).publish(_credentials(), PostRequest(**{**first.__dict__, "posted_parts": reported[-1]}))
    sent = _sent(wa, post.publication_id)
    assert sorted(m["to"] for m in sent) == sorted(r.lstrip("+") for r in RECIPIENTS)
    assert len(result.parts) == 3 and result.parts[0] == reported[0][0]


def test_timeout_is_ambiguous_and_never_resent(wa: str) -> None:
    """The message is accepted but the answer is late: ambiguous; reconcile confirms nothing and sends nothing."""
    post = _post()
    httpx.post(f"{wa}/__emu/faults", json={"route": "messages", "mode": "timeout_after_create", "seconds": 2})
    started = datetime.now(UTC)
    whatsapp = _adapter(wa)
    with pytest.raises(PlatformError) as failure:
        whatsapp.publish(_credentials(recipients=RECIPIENTS[:1]), post)
    assert failure.value.kind == "ambiguous"
    assert whatsapp.reconcile(_credentials(recipients=RECIPIENTS[:1]), post, started) is None
    assert len(_sent(wa, post.publication_id)) == 1


@pytest.mark.parametrize(("settings", "fragment"), [
    ({"template": "muse_pending"}, "PENDING"),
    ({"template": "no_such_template"}, "does not exist"),
    ({"template_language": "ta"}, "does not exist"),
    ({"recipients": []}, "opted-in"),
    ({"template": ""}, "template"),
])
def test_refusals_are_permanent_with_the_reason(wa: str, settings: dict[str, Any], fragment: str) -> None:
    post = _post()
    with pytest.raises(PlatformError) as failure:
        _adapter(wa).publish(_credentials(**settings), post)
    assert failure.value.kind == "permanent" and fragment in failure.value.message
    assert _sent(wa, post.publication_id) == []


def test_revoked_token_asks_for_reconnect(wa: str) -> None:
    httpx.post(f"{wa}/__emu/faults", json={"route": "*", "mode": "revoked"})
    with pytest.raises(PlatformError) as failure:
        _adapter(wa).publish(_credentials(), _post())
    assert failure.value.kind == "reconnect" and emulator.LOCAL_WHATSAPP_TOKEN not in failure.value.message
