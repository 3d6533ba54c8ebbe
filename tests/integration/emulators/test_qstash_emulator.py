"""The QStash emulator, driven by the official `qstash` SDK and checked with `qstash.Receiver`.

Each test serves the emulator under `/qstash` (as the local stack mounts it) and a recording
receiver app, both on loopback threads, against a real Postgres. Backoff is scaled by 0.001 so
the real QStash retry schedule takes milliseconds.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import jwt
import psycopg
import pytest
from qstash import QStash, Receiver
from qstash.errors import QStashError, SignatureError
from qstash.schedule import ScheduleState
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request, Response

from infra.local.emulators.config import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
    EmulatorConfig,
)
from infra.local.emulators.qstash import (
    CronClock,
    CronError,
    QStashEmulator,
    create_app,
    evaluate_retry_delay,
    parse_cron,
)
from infra.local.serve import RunningServer, serve_in_thread

VERIFIER = Receiver(current_signing_key=DEV_QSTASH_CURRENT_SIGNING_KEY, next_signing_key=DEV_QSTASH_NEXT_SIGNING_KEY)


# --- a recording destination ---------------------------------------------------------------------


@dataclass
class Delivery:
    """One request the receiver got."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    started: float

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    sleep: float = 0.0


class RecordingReceiver:
    """A WSGI destination that records requests and answers with scripted replies per path."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.max_concurrent: Counter[str] = Counter()
        self._active: Counter[str] = Counter()
        self._scripts: dict[str, list[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._lock = threading.Lock()

    def script(self, path: str, *replies: Reply, then: Reply | None = None) -> None:
        """Answer the next requests to `path` with `replies`, then with `then` (default 200)."""
        with self._lock:
            self._scripts[path] = list(replies)
            if then is not None:
                self._defaults[path] = then

    def at(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.path == path]

    def __call__(self, environ: dict, start_response: Callable) -> Iterator[bytes]:
        request = Request(environ)
        delivery = Delivery(
            request.method,
            request.path,
            environ.get("QUERY_STRING", ""),
            dict(request.headers),
            request.get_data(),
            time.monotonic(),
        )
        with self._lock:
            self.deliveries.append(delivery)
            script = self._scripts.get(request.path)
            reply = script.pop(0) if script else self._defaults.get(request.path, Reply())
            self._active[request.path] += 1
            self.max_concurrent[request.path] = max(self.max_concurrent[request.path], self._active[request.path])
        try:
            time.sleep(reply.sleep)
        finally:
            with self._lock:
                self._active[request.path] -= 1
        return Response(reply.body, status=reply.status, headers=reply.headers)(environ, start_response)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


# --- fixtures ------------------------------------------------------------------------------------


@dataclass
class RunningEmulator:
    server: RunningServer
    handle: QStashEmulator

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/qstash"

    def stop(self) -> None:
        self.server.stop()
        self.handle.stop()


def start_emulator(database_url: str, cron_seconds: float = 60.0) -> RunningEmulator:
    config = EmulatorConfig(
        database_url=database_url,
        qstash_backoff_scale=0.001,
        qstash_poll_interval=0.02,
        qstash_cron_seconds=cron_seconds,
    )
    app = create_app(config)
    mounted = DispatcherMiddleware(NotFound(), {"/qstash": app})
    return RunningEmulator(serve_in_thread(mounted), app.extensions["qstash_emulator"])


@pytest.fixture
def database_url(fresh_database_dsn: str) -> Iterator[str]:
    """The session database, with the emulator's schema dropped after each test."""
    yield fresh_database_dsn
    with psycopg.connect(fresh_database_dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS qstash_emulator CASCADE")


@pytest.fixture
def emulator(database_url: str) -> Iterator[RunningEmulator]:
    running = start_emulator(database_url)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(emulator: RunningEmulator) -> QStash:
    return QStash(DEV_QSTASH_TOKEN, base_url=emulator.base_url, retry=False)


@pytest.fixture
def receiver() -> Iterator[tuple[RecordingReceiver, str]]:
    app = RecordingReceiver()
    server = serve_in_thread(app)
    try:
        yield app, server.url
    finally:
        server.stop()


def emulator_messages(emulator: RunningEmulator) -> dict[str, dict]:
    response = httpx.get(f"{emulator.base_url}/_emulator/messages")
    return {m["messageId"]: m for m in response.json()["messages"]}


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {DEV_QSTASH_TOKEN}"}


# --- tests ---------------------------------------------------------------------------------------


def test_publish_json_is_delivered_signed_with_forwarded_headers(client, emulator, receiver) -> None:
    app, base = receiver
    destination = f"{base}/hook?run=1&x=a%2Fb"
    published = client.message.publish_json(url=destination, body={"a": 1}, method="PUT", headers={"X-Trace": "t1"})
    wait_for(lambda: app.at("/hook"))
    (delivery,) = app.at("/hook")
    assert delivery.method == "PUT"
    assert delivery.query == "run=1&x=a%2Fb"
    assert delivery.body == json.dumps({"a": 1}).encode()
    assert delivery.headers["X-Trace"] == "t1"
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["User-Agent"] == "Upstash-QStash"
    assert delivery.headers["Upstash-Message-Id"] == published.message_id
    assert delivery.headers["Upstash-Retried"] == "0"

    signature = delivery.headers["Upstash-Signature"]
    VERIFIER.verify(signature=signature, body=delivery.text, url=destination)
    claims = jwt.decode(signature, options={"verify_signature": False})
    assert claims["iss"] == "Upstash" and claims["sub"] == destination and "aud" not in claims
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"]
    assert claims["body"].endswith("=") and claims["jti"].startswith("jwt_")

    wait_for(lambda: emulator_messages(emulator)[published.message_id]["state"] == "DELIVERED")
    states = [log.state.value for log in client.log.list(filter={"message_id": published.message_id}).logs]
    assert states == ["DELIVERED", "ACTIVE", "CREATED"]


def test_wrong_keys_or_url_fail_verification(client, receiver) -> None:
    app, base = receiver
    destination = f"{base}/hook"
    client.message.publish(url=destination, body="plain text", content_type="text/plain")
    wait_for(lambda: app.at("/hook"))
    (delivery,) = app.at("/hook")
    signature = delivery.headers["Upstash-Signature"]
    VERIFIER.verify(signature=signature, body="plain text", url=destination)
    forged = Receiver(current_signing_key="sig_" + "x" * 28, next_signing_key="sig_" + "y" * 28)
    with pytest.raises(SignatureError):
        forged.verify(signature=signature, body="plain text", url=destination)
    with pytest.raises(SignatureError):
        VERIFIER.verify(signature=signature, body="plain text", url=f"{base}/other")
    with pytest.raises(SignatureError):
        VERIFIER.verify(signature=signature, body="tampered", url=destination)


def test_delay_and_not_before_are_respected(client, receiver) -> None:
    app, base = receiver
    start = time.monotonic()
    client.message.publish_json(url=f"{base}/delayed", body={}, delay="1s")
    client.message.publish_json(url=f"{base}/not-before", body={}, delay="1h", not_before=int(time.time()) + 2)
    time.sleep(0.5)
    assert app.deliveries == []
    wait_for(lambda: app.at("/delayed") and app.at("/not-before"), timeout=5)
    assert app.at("/delayed")[0].started - start >= 0.95


def test_deduplication_returns_202_with_the_existing_id(client, emulator, receiver) -> None:
    app, base = receiver
    first = client.message.publish_json(url=f"{base}/dedup", body={"n": 1}, deduplication_id="d-1")
    response = httpx.post(
        f"{emulator.base_url}/v2/publish/{base}/dedup",
        headers={**auth(), "Upstash-Deduplication-Id": "d-1", "Content-Type": "application/json"},
        content=b'{"n": 2}',
    )
    assert response.status_code == 202
    assert response.json() == {"messageId": first.message_id, "deduplicated": True}
    assert not first.deduplicated

    content_a = client.message.publish(url=f"{base}/content", body="same", content_based_deduplication=True)
    content_b = client.message.publish(url=f"{base}/content", body="same", content_based_deduplication=True)
    other = client.message.publish(url=f"{base}/content", body="different", content_based_deduplication=True)
    assert content_b.deduplicated and content_b.message_id == content_a.message_id
    assert not other.deduplicated

    assert emulator.handle.drain(10)
    assert len(app.at("/dedup")) == 1 and app.at("/dedup")[0].body == b'{"n": 1}'
    assert sorted(d.text for d in app.at("/content")) == ["different", "same"]


def test_retries_with_backoff_then_success(client, emulator, receiver) -> None:
    app, base = receiver
    app.script("/flaky", Reply(500), Reply(503))
    published = client.message.publish_json(url=f"{base}/flaky", body={"x": 1}, retries=3)
    wait_for(lambda: len(app.at("/flaky")) == 3)
    deliveries = app.at("/flaky")
    assert [d.headers["Upstash-Retried"] for d in deliveries] == ["0", "1", "2"]
    assert deliveries[2].started - deliveries[1].started >= 0.148  # e**5 s scaled by 0.001
    for delivery in deliveries:
        VERIFIER.verify(signature=delivery.headers["Upstash-Signature"], body=delivery.text, url=f"{base}/flaky")
    wait_for(lambda: emulator_messages(emulator)[published.message_id]["state"] == "DELIVERED")
    assert emulator_messages(emulator)[published.message_id]["attempts"] == 3
    states = {log.state.value for log in client.log.list(filter={"message_id": published.message_id}).logs}
    assert {"ERROR", "RETRY", "DELIVERED"} <= states


def test_retry_after_and_retry_delay_expression_set_the_wait(client, receiver) -> None:
    app, base = receiver
    app.script("/hinted", Reply(429, {"Retry-After": "300"}))
    app.script("/expr", Reply(500), Reply(500))
    client.message.publish_json(url=f"{base}/hinted", body={}, retries=1)
    client.message.publish_json(url=f"{base}/expr", body={}, retries=2, retry_delay="100000 * (1 + retried)")
    wait_for(lambda: len(app.at("/hinted")) == 2 and len(app.at("/expr")) == 3)
    hinted, expr = app.at("/hinted"), app.at("/expr")
    assert hinted[1].started - hinted[0].started >= 0.3  # 300 s scaled by 0.001
    assert expr[1].started - expr[0].started >= 0.1
    assert expr[2].started - expr[1].started >= 0.2


def test_non_retryable_489_goes_to_dlq_and_fires_failure_callback(client, emulator, receiver) -> None:
    app, base = receiver
    app.script("/reject", then=Reply(489, {"Upstash-NonRetryable-Error": "true"}, b"bad input"))
    published = client.message.publish_json(
        url=f"{base}/reject", body={"k": "v"}, retries=3, failure_callback=f"{base}/failed"
    )
    wait_for(lambda: app.at("/failed"))
    assert len(app.at("/reject")) == 1
    (failure,) = app.at("/failed")
    VERIFIER.verify(signature=failure.headers["Upstash-Signature"], body=failure.text, url=f"{base}/failed")
    payload = json.loads(failure.body)
    assert payload["status"] == 489 and payload["sourceMessageId"] == published.message_id
    assert base64.b64decode(payload["body"]) == b"bad input"
    assert base64.b64decode(payload["sourceBody"]) == json.dumps({"k": "v"}).encode()

    dlq = client.dlq.list(filter={"message_id": published.message_id})
    (dead,) = dlq.messages
    assert dead.dlq_id == payload["dlqId"] and dead.response_status == 489
    assert dead.response_body == "bad input" and dead.url == f"{base}/reject"
    assert client.dlq.get(dead.dlq_id).message_id == published.message_id
    client.dlq.delete(dead.dlq_id)
    assert client.dlq.list(filter={"message_id": published.message_id}).messages == []
    assert emulator_messages(emulator)[published.message_id]["state"] == "FAILED"


def test_exhausted_retries_go_to_dlq(client, receiver) -> None:
    app, base = receiver
    app.script("/down", then=Reply(500, body=b"boom"))
    published = client.message.publish_json(url=f"{base}/down", body={}, retries=1)
    wait_for(lambda: client.dlq.list(filter={"message_id": published.message_id}).messages)
    assert len(app.at("/down")) == 2
    (dead,) = client.dlq.list(filter={"message_id": published.message_id}).messages
    assert dead.response_status == 500 and dead.max_retries == 1
    assert client.dlq.delete_many([dead.dlq_id]) == 1


def test_timeout_counts_as_a_failed_attempt(client, receiver) -> None:
    app, base = receiver
    app.script("/slow", then=Reply(sleep=1.5))
    published = client.message.publish_json(url=f"{base}/slow", body={}, timeout=1, retries=0)
    wait_for(lambda: client.dlq.list(filter={"message_id": published.message_id}).messages, timeout=5)
    (dead,) = client.dlq.list(filter={"message_id": published.message_id}).messages
    assert dead.response_status == 0 and len(app.at("/slow")) == 1


def test_two_emulators_on_one_database_deliver_each_attempt_once(database_url, receiver) -> None:
    app, base = receiver
    emulators = [start_emulator(database_url), start_emulator(database_url)]
    try:
        clients = [QStash(DEV_QSTASH_TOKEN, base_url=e.base_url, retry=False) for e in emulators]
        ids = {clients[n % 2].message.publish(url=f"{base}/shared", body=str(n)).message_id for n in range(30)}
        wait_for(lambda: len(app.at("/shared")) >= 30)
        assert all(e.handle.drain(5) for e in emulators)
        delivered = [d.headers["Upstash-Message-Id"] for d in app.at("/shared")]
        assert sorted(delivered) == sorted(ids)
    finally:
        for running in emulators:
            running.stop()


def test_callback_body_shape(client, receiver) -> None:
    app, base = receiver
    app.script("/work", Reply(200, {"X-Result": "r1"}, b"done"))
    published = client.message.publish_json(
        url=f"{base}/work",
        body={"job": 7},
        callback=f"{base}/cb",
        callback_headers={"Forward-X-Cb": "yes"},
        headers={"X-Trace": "t9"},
    )
    wait_for(lambda: app.at("/cb"))
    (callback,) = app.at("/cb")
    VERIFIER.verify(signature=callback.headers["Upstash-Signature"], body=callback.text, url=f"{base}/cb")
    assert callback.headers["X-Cb"] == "yes"
    payload = json.loads(callback.body)
    assert payload["status"] == 200 and payload["retried"] == 0 and payload["maxRetries"] == 3
    assert base64.b64decode(payload["body"]) == b"done"
    assert payload["header"]["X-Result"] == ["r1"]
    assert payload["sourceMessageId"] == published.message_id
    assert payload["url"] == f"{base}/work" and payload["method"] == "POST"
    assert payload["sourceHeader"]["X-Trace"] == ["t9"]
    assert base64.b64decode(payload["sourceBody"]) == b'{"job": 7}'
    assert isinstance(payload["notBefore"], str) and isinstance(payload["createdAt"], str)
    assert "dlqId" not in payload


def test_flow_control_parallelism_one_serializes(client, emulator, receiver) -> None:
    app, base = receiver
    slow = Reply(sleep=0.15)
    app.script("/serial", then=slow)
    app.script("/parallel", then=slow)
    for n in range(4):
        client.message.publish_json(url=f"{base}/serial", body={"n": n}, flow_control={"key": "k1", "parallelism": 1})
        client.message.publish_json(url=f"{base}/parallel", body={"n": n})
    wait_for(lambda: len(app.at("/serial")) == 4 and len(app.at("/parallel")) == 4)
    assert emulator.handle.drain(10)
    assert app.max_concurrent["/serial"] == 1
    assert app.max_concurrent["/parallel"] > 1


def test_a_rate_without_a_period_reports_the_one_second_period_qstash_applies(client, receiver) -> None:
    _, base = receiver
    published = client.message.publish_json(url=f"{base}/later", body={}, delay="1h",
                                             flow_control={"key": "rated", "rate": 5})
    message = client.message.get(published.message_id)
    assert message.flow_control is not None
    assert (message.flow_control.rate, message.flow_control.period) == (5, 1)
    client.message.cancel(published.message_id)


def test_log_entries_carry_the_retry_delay_expression(client, receiver) -> None:
    app, base = receiver
    app.script("/logged", Reply(500), then=Reply())
    published = client.message.publish_json(url=f"{base}/logged", body={}, retries=1, retry_delay="10 * retried")
    wait_for(lambda: len(app.at("/logged")) == 2)
    logs = client.log.list(filter={"message_id": published.message_id}).logs
    assert logs and {log.retry_delay_expression for log in logs} == {"10 * retried"}
    plain = client.message.publish_json(url=f"{base}/logged", body={})
    wait_for(lambda: len(app.at("/logged")) == 3)
    assert {log.retry_delay_expression for log in client.log.list(filter={"message_id": plain.message_id}).logs} == {
        None}


def test_enqueue_delivers_fifo_one_at_a_time(client, emulator, receiver) -> None:
    app, base = receiver
    app.script("/queued", then=Reply(sleep=0.05))
    for n in range(4):
        client.message.enqueue_json(queue="q1", url=f"{base}/queued", body={"n": n})
    wait_for(lambda: len(app.at("/queued")) == 4)
    assert [json.loads(d.body)["n"] for d in app.at("/queued")] == [0, 1, 2, 3]
    assert app.max_concurrent["/queued"] == 1


def test_batch_json_and_a_bad_element(client, emulator, receiver) -> None:
    app, base = receiver
    responses = client.message.batch_json(
        [
            {"url": f"{base}/b1", "body": {"i": 1}},
            {"url": f"{base}/b2", "body": {"i": 2}, "headers": {"X-B": "2"}},
        ]
    )
    assert len(responses) == 2 and all(r.message_id.startswith("msg_") for r in responses)
    wait_for(lambda: app.at("/b1") and app.at("/b2"))
    assert app.at("/b2")[0].headers["X-B"] == "2"
    VERIFIER.verify(signature=app.at("/b1")[0].headers["Upstash-Signature"], body='{"i": 1}', url=f"{base}/b1")

    mixed = httpx.post(
        f"{emulator.base_url}/v2/batch",
        headers=auth(),
        json=[
            {"destination": "ftp://nope", "body": "x"},
            {"destination": f"{base}/b3", "body": "y", "queue": None},
        ],
    ).json()
    assert mixed[0] == {"error": "invalid destination url: endpoint has invalid scheme, add http:// or https://"}
    assert mixed[1]["messageId"].startswith("msg_")
    wait_for(lambda: app.at("/b3"))


def test_messages_survive_a_restart(database_url, receiver) -> None:
    app, base = receiver
    first = start_emulator(database_url)
    try:
        client = QStash(DEV_QSTASH_TOKEN, base_url=first.base_url, retry=False)
        delayed = client.message.publish_json(url=f"{base}/later", body={"d": 1}, delay="1s")
        in_flight = client.message.publish_json(url=f"{base}/crashed", body={"c": 1}, delay="1h")
    finally:
        first.stop()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """UPDATE qstash_emulator.messages SET state = 'ACTIVE', due_at = 0, lease_owner = 'dead-process',
               lease_until = extract(epoch FROM now()) - 1 WHERE id = %s""",
            (in_flight.message_id,),
        )
    second = start_emulator(database_url)
    try:
        wait_for(lambda: app.at("/later") and app.at("/crashed"), timeout=5)
        assert app.at("/later")[0].headers["Upstash-Message-Id"] == delayed.message_id
        assert app.at("/crashed")[0].headers["Upstash-Message-Id"] == in_flight.message_id
        assert second.handle.drain(5)
        assert len(app.at("/later")) == 1 and len(app.at("/crashed")) == 1
    finally:
        second.stop()


def test_duplicates_knob_sends_each_attempt_concurrently(client, emulator, receiver) -> None:
    app, base = receiver
    app.script("/dup", then=Reply(sleep=0.3))
    response = httpx.post(
        f"{emulator.base_url}/v2/publish/{base}/dup",
        headers={**auth(), "Upstash-Emulator-Duplicates": "3"},
        content=b"once",
    )
    message_id = response.json()["messageId"]
    wait_for(lambda: len(app.at("/dup")) == 3)
    assert {d.headers["Upstash-Message-Id"] for d in app.at("/dup")} == {message_id}
    assert app.max_concurrent["/dup"] == 3

    knob = httpx.post(f"{emulator.base_url}/_emulator/duplicates", json={"times": 2})
    assert knob.json() == {"times": 2}
    client.message.publish(url=f"{base}/dup2", body="twice")
    wait_for(lambda: len(app.at("/dup2")) == 2)
    assert emulator.handle.drain(5)
    httpx.post(f"{emulator.base_url}/_emulator/duplicates", json={"times": 1})


def test_unauthorized_requests_get_401(emulator, receiver) -> None:
    _, base = receiver
    wrong = QStash("not-the-token", base_url=emulator.base_url, retry=False)
    with pytest.raises(QStashError, match="401"):
        wrong.message.publish_json(url=f"{base}/x", body={})
    anonymous = httpx.post(f"{emulator.base_url}/v2/publish/{base}/x", content=b"{}")
    assert anonymous.status_code == 401 and "error" in anonymous.json()

    via_query = httpx.post(f"{emulator.base_url}/v2/publish/{base}/x?keep=1&qstash_token={DEV_QSTASH_TOKEN}")
    assert via_query.status_code == 201
    stored = emulator_messages(emulator)[via_query.json()["messageId"]]
    assert stored["url"] == f"{base}/x?keep=1"


def test_bad_requests_name_the_problem(client, emulator) -> None:
    with pytest.raises(QStashError, match="endpoint has invalid scheme, add http:// or https://"):
        client.message.publish_json(url="ftp://example.com/x", body={})
    bad_delay = httpx.post(
        f"{emulator.base_url}/v2/publish/http://example.com/x", headers={**auth(), "Upstash-Delay": "soon"}
    )
    assert bad_delay.status_code == 400 and "Upstash-Delay" in bad_delay.json()["error"]
    with pytest.raises(QStashError, match="Upstash-Retry-Delay"):
        client.message.publish_json(url="http://example.com/x", body={}, retry_delay="__import__('os')")


def test_get_cancel_and_keys(client, emulator, receiver) -> None:
    _, base = receiver
    published = client.message.publish_json(url=f"{base}/never", body={"z": 0}, delay="1h", retries=2)
    message = client.message.get(published.message_id)
    assert message.url == f"{base}/never" and message.max_retries == 2 and message.body == '{"z": 0}'
    client.message.cancel(published.message_id)
    with pytest.raises(QStashError, match="404"):
        client.message.get(published.message_id)
    assert emulator_messages(emulator)[published.message_id]["state"] == "CANCELED"
    states = [log.state.value for log in client.log.list(filter={"message_id": published.message_id}).logs]
    assert states[0] == "CANCELED"
    keys = client.signing_key.get()
    assert (keys.current, keys.next) == (DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY)


@pytest.mark.parametrize(
    ("expression", "retried", "expected"),
    [
        ("1000", 0, 1000.0),
        ("pow(2, retried) * 1000", 3, 8000.0),
        ("max(10, min(5, retried))", 7, 10.0),
        ("floor(sqrt(abs(-16))) + ceil(0.2) + round(exp(0))", 0, 6.0),
        ("1000 * (1 + retried)", 1, 2000.0),
    ],
)
def test_retry_delay_expressions(expression: str, retried: int, expected: float) -> None:
    assert evaluate_retry_delay(expression, retried) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "retried.__class__",
        "[1, 2]",
        "open('x')",
        "lambda: 1",
        "True + 1",
        "x",
    ],
)
def test_retry_delay_expressions_are_sandboxed(expression: str) -> None:
    with pytest.raises(ValueError):
        evaluate_retry_delay(expression, 0)


# --- schedules -----------------------------------------------------------------------------------


def test_schedule_create_get_list_pause_resume_delete(client, emulator, receiver) -> None:
    _, base = receiver
    destination = f"{base}/sweep?kind=stale"
    before = time.time()
    schedule_id = client.schedule.create_json(
        destination=destination,
        cron="*/5 * * * *",
        body={"sweep": True},
        retries=2,
        headers={"X-Origin": "cron"},
        callback=f"{base}/cb",
        failure_callback=f"{base}/failed",
        delay=30,
        timeout="20s",
        label="sweeper",
    )
    assert schedule_id.startswith("scd_")
    schedule = client.schedule.get(schedule_id)
    assert schedule.destination == destination and schedule.cron == "*/5 * * * *"
    assert schedule.method == "POST" and schedule.retries == 2 and not schedule.paused
    assert schedule.body == '{"sweep": true}'
    assert schedule.headers == {"Content-Type": ["application/json"], "X-Origin": ["cron"]}
    assert schedule.callback == f"{base}/cb" and schedule.failure_callback == f"{base}/failed"
    assert schedule.delay == 30 and schedule.timeout == 20 and schedule.label == "sweeper"
    assert before * 1000 - 1 <= schedule.created_at <= time.time() * 1000
    assert schedule.last_schedule_time is None and schedule.last_schedule_states is None
    next_fire = datetime.fromtimestamp(schedule.next_schedule_time / 1000, UTC)
    assert next_fire.minute % 5 == 0 and next_fire.second == 0 and next_fire.timestamp() > before

    upserted = client.schedule.create(
        destination=f"{base}/sweep", cron="0 3 * * *", schedule_id="muse-sweeper", queue="sweeps", body="v1"
    )
    assert upserted == "muse-sweeper"
    assert client.schedule.create(destination=f"{base}/sweep", cron="30 4 * * *", schedule_id="muse-sweeper") == (
        "muse-sweeper"
    )
    updated = client.schedule.get("muse-sweeper")
    assert updated.cron == "30 4 * * *" and updated.queue is None and updated.body == ""
    assert sorted(s.schedule_id for s in client.schedule.list()) == sorted([schedule_id, "muse-sweeper"])

    client.schedule.pause(schedule_id)
    paused = client.schedule.get(schedule_id)
    assert paused.paused and paused.next_schedule_time is None
    client.schedule.resume(schedule_id)
    resumed = client.schedule.get(schedule_id)
    assert not resumed.paused and resumed.next_schedule_time == schedule.next_schedule_time
    for action in ("pause", "resume"):
        response = httpx.post(f"{emulator.base_url}/v2/schedules/muse-sweeper/{action}", headers=auth())
        assert response.status_code == 200
        assert client.schedule.get("muse-sweeper").paused is (action == "pause")

    client.schedule.delete(schedule_id)
    with pytest.raises(QStashError, match="404"):
        client.schedule.get(schedule_id)
    with pytest.raises(QStashError, match="404"):
        client.schedule.pause(schedule_id)
    assert [s.schedule_id for s in client.schedule.list()] == ["muse-sweeper"]


def test_bad_schedules_are_refused(client, receiver) -> None:
    _, base = receiver
    with pytest.raises(QStashError, match="Invalid cron expression"):
        client.schedule.create(destination=f"{base}/x", cron="61 * * * *")
    with pytest.raises(QStashError, match="Invalid cron expression empty spec string"):
        client.schedule.create(destination=f"{base}/x", cron="")
    with pytest.raises(QStashError, match="never fires"):
        client.schedule.create(destination=f"{base}/x", cron="0 0 30 2 *")
    with pytest.raises(QStashError, match="invalid scheme"):
        client.schedule.create(destination="ftp://example.com/x", cron="* * * * *")
    with pytest.raises(QStashError, match="Upstash-Retry-Delay"):
        client.schedule.create(destination=f"{base}/x", cron="* * * * *", retry_delay="open('x')")
    with pytest.raises(QStashError, match="Upstash-Schedule-Id"):
        client.schedule.create(destination=f"{base}/x", cron="* * * * *", schedule_id="a b")
    assert client.schedule.list() == []


def test_schedule_fires_signed_messages_on_compressed_time(client, emulator, receiver) -> None:
    app, base = receiver
    destination = f"{base}/tick"
    schedule_id = client.schedule.create_json(
        destination=destination, cron="* * * * *", body={"sweep": 1}, retries=1, headers={"X-Origin": "cron"}
    )
    time.sleep(0.3)
    assert app.at("/tick") == []
    assert httpx.get(f"{emulator.base_url}/_emulator/cron").json() == {"seconds_per_minute": 60.0}
    knob = httpx.post(f"{emulator.base_url}/_emulator/cron", json={"seconds_per_minute": 0.5})
    assert knob.json() == {"seconds_per_minute": 0.5}
    wait_for(lambda: len(app.at("/tick")) >= 3, timeout=10)
    ticks = app.at("/tick")[:3]
    for tick in ticks:
        VERIFIER.verify(signature=tick.headers["Upstash-Signature"], body=tick.text, url=destination)
        assert tick.headers["Upstash-Schedule-Id"] == schedule_id
        assert tick.headers["X-Origin"] == "cron" and tick.headers["Content-Type"] == "application/json"
        assert tick.body == b'{"sweep": 1}' and tick.headers["Upstash-Retried"] == "0"
    assert len({t.headers["Upstash-Message-Id"] for t in ticks}) == 3
    gaps = [b.started - a.started for a, b in zip(ticks, ticks[1:], strict=False)]
    assert all(0.25 <= gap <= 1.5 for gap in gaps), gaps

    client.schedule.pause(schedule_id)
    assert emulator.handle.drain(5)
    schedule = client.schedule.get(schedule_id)
    last_id = app.at("/tick")[-1].headers["Upstash-Message-Id"]
    assert schedule.last_schedule_states == {last_id: ScheduleState.SUCCESS}
    assert schedule.last_schedule_time is not None and schedule.last_schedule_time <= time.time() * 1000
    fired = len(app.at("/tick"))
    time.sleep(1.2)
    assert len(app.at("/tick")) == fired

    logs = client.log.list(filter={"schedule_id": schedule_id}).logs
    assert {log.message_id for log in logs} >= {t.headers["Upstash-Message-Id"] for t in ticks}
    assert all(log.schedule_id == schedule_id for log in logs)
    message = emulator_messages(emulator)[last_id]
    assert message["scheduleId"] == schedule_id and message["maxRetries"] == 1


def test_scheduled_message_retries_then_fails_into_dlq_with_its_schedule_id(client, emulator, receiver) -> None:
    app, base = receiver
    app.script("/broken", then=Reply(500, body=b"down"))
    schedule_id = client.schedule.create(
        destination=f"{base}/broken", cron="* * * * *", body="x", retries=1, failure_callback=f"{base}/failed"
    )
    httpx.post(f"{emulator.base_url}/_emulator/cron", json={"seconds_per_minute": 1})
    wait_for(lambda: app.at("/failed"), timeout=10)
    client.schedule.delete(schedule_id)
    first = app.at("/broken")[0]
    attempts = [d for d in app.at("/broken") if d.headers["Upstash-Message-Id"] == first.headers["Upstash-Message-Id"]]
    assert [d.headers["Upstash-Retried"] for d in attempts] == ["0", "1"]
    (failure,) = app.at("/failed")[:1]
    VERIFIER.verify(signature=failure.headers["Upstash-Signature"], body=failure.text, url=f"{base}/failed")
    payload = json.loads(failure.body)
    assert payload["scheduleId"] == schedule_id and payload["status"] == 500 and payload["dlqId"]
    dead = client.dlq.list(filter={"schedule_id": schedule_id}).messages
    assert dead and all(d.schedule_id == schedule_id for d in dead)


def test_schedules_survive_a_restart(database_url, receiver) -> None:
    app, base = receiver
    first = start_emulator(database_url)
    try:
        client = QStash(DEV_QSTASH_TOKEN, base_url=first.base_url, retry=False)
        kept = client.schedule.create(destination=f"{base}/kept", cron="* * * * *", body="k")
        paused = client.schedule.create(destination=f"{base}/paused", cron="* * * * *", body="p")
        client.schedule.pause(paused)
    finally:
        first.stop()
    assert app.deliveries == []
    second = start_emulator(database_url, cron_seconds=0.5)
    try:
        client = QStash(DEV_QSTASH_TOKEN, base_url=second.base_url, retry=False)
        assert {s.schedule_id: s.paused for s in client.schedule.list()} == {kept: False, paused: True}
        wait_for(lambda: len(app.at("/kept")) >= 2, timeout=10)
        tick = app.at("/kept")[0]
        assert tick.headers["Upstash-Schedule-Id"] == kept
        VERIFIER.verify(signature=tick.headers["Upstash-Signature"], body="k", url=f"{base}/kept")
        client.schedule.delete(kept)
        assert app.at("/paused") == []
    finally:
        second.stop()


def test_two_emulators_fire_each_cron_minute_once(database_url, receiver) -> None:
    app, base = receiver
    emulators = [start_emulator(database_url, cron_seconds=0.5), start_emulator(database_url, cron_seconds=0.5)]
    try:
        client = QStash(DEV_QSTASH_TOKEN, base_url=emulators[0].base_url, retry=False)
        schedule_id = client.schedule.create(destination=f"{base}/once", cron="* * * * *", body="o")
        wait_for(lambda: len(app.at("/once")) >= 6, timeout=10)
        client.schedule.delete(schedule_id)
        assert all(e.handle.drain(5) for e in emulators)
        starts = sorted(d.started for d in app.at("/once"))
        assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) > 0.2
    finally:
        for running in emulators:
            running.stop()


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", "2026-03-01T10:00:30", ["2026-03-01T10:01:00", "2026-03-01T10:02:00"]),
        ("*/15 * * * *", "2026-03-01T10:07:00", ["2026-03-01T10:15:00", "2026-03-01T10:30:00"]),
        ("0 9 * * MON-FRI", "2026-03-06T10:00:00", ["2026-03-09T09:00:00", "2026-03-10T09:00:00"]),
        ("5/20 1,3 * * *", "2026-03-06T10:00:00", ["2026-03-07T01:05:00", "2026-03-07T01:25:00"]),
        ("0 0 1,15 * 3", "2026-03-01T10:00:00", ["2026-03-04T00:00:00", "2026-03-11T00:00:00"]),
        ("0 0 29 2 *", "2026-03-01T00:00:00", ["2028-02-29T00:00:00", "2032-02-29T00:00:00"]),
        ("@hourly", "2026-03-01T10:59:59", ["2026-03-01T11:00:00", "2026-03-01T12:00:00"]),
        ("0 12 * JAN-MAR 7", "2026-03-28T00:00:00", ["2026-03-29T12:00:00", "2027-01-03T12:00:00"]),
    ],
)
def test_cron_next_times(expression: str, after: str, expected: list[str]) -> None:
    cron = parse_cron(expression)
    instant = datetime.fromisoformat(after).replace(tzinfo=UTC).timestamp()
    found = []
    for _ in expected:
        instant = cron.next_after(instant)
        found.append(datetime.fromtimestamp(instant, UTC).replace(tzinfo=None).isoformat())
    assert found == expected


def test_cron_time_zone_skips_the_dst_gap() -> None:
    cron = parse_cron("CRON_TZ=America/New_York 30 2 * * *")
    instant = datetime(2026, 3, 7, 12, tzinfo=UTC).timestamp()
    firing = cron.next_after(instant)
    assert datetime.fromtimestamp(firing, UTC) == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)


@pytest.mark.parametrize("expression", ["", "* * * *", "60 * * * *", "*/0 * * * *", "5-1 * * * *", "x * * * *"])
def test_invalid_cron_expressions(expression: str) -> None:
    with pytest.raises(CronError, match="Invalid cron expression"):
        parse_cron(expression)


def test_compressed_cron_clock_maps_minutes_to_seconds() -> None:
    start = 1_800_000_000.0
    clock = CronClock(2.0, now=start)
    every_minute, every_five = parse_cron("* * * * *"), parse_cron("*/5 * * * *")
    assert clock.next_fire(every_minute, start) == start + 2
    assert clock.next_fire(every_minute, start + 2) == start + 4
    assert clock.next_fire(every_five, start + 1) == start + 10
    clock.set_speed(60.0, now=start)
    assert clock.next_fire(every_minute, start + 1) == start + 60
