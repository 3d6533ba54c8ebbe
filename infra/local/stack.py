"""The local stack: embedded Postgres + pgvector and Redis, the emulators, and every function on one port.

`python -m infra.local.stack` (what `make dev` runs) serves each function under its own path
(`/api`, `/planner`, `/research`, …, `/webhooks/phonepe`; `/api/v1/chat/...` goes to the chat function,
the longest mount winning, everything else under `/api` to the API) and each emulator under its own prefix
(`/qstash`, `/gemini`, `/tavily`, `/phonepe`, `/upstash-redis`, `/supabase`, `/langsmith`, `/meta`,
`/whatsapp`, `/linkedin`, `/x`, `/resend`).
With `--emulators-only` it serves just the emulators (the end-to-end tests run each function in
its own process against them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from infra.local.embedded import DataDirLock, EmbeddedPostgres, EmbeddedRedis, stop_leftovers
from infra.local.emulators import supabase_storage
from infra.local.emulators.config import (
    EmulatorConfig,
)
from infra.roster import load_roster

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / ".muse"
BOOTSTRAP_SQL = REPO_ROOT / "infra" / "local" / "sql" / "supabase_bootstrap.sql"
EMULATORS = ("qstash", "gemini", "tavily", "phonepe", "upstash-redis", "supabase", "langsmith", "meta", "whatsapp",
             "linkedin", "x", "resend")

log = logging.getLogger("muse.stack")


LOCAL_ENCRYPTION_KEYS = "local-dev:bXVzZS1sb2NhbC1kZXYtZW5jcnlwdGlvbi1rZXktMzI="
"""The local stack's key-encryption key for channel tokens and workspace keys (`MUSE_ENCRYPTION_KEYS`): fixed,
so sealed secrets survive a fresh data directory; a deployment sets its own from Secret Manager."""


@dataclass
class LocalSecrets:
    """Secrets of one local stack, kept in `<data dir>/secrets.json` so `make token` can sign."""

    jwt_secret: str
    es256_kid: str
    es256_private_pem: str
    es256_jwk: dict[str, Any]

    @classmethod
    def load_or_create(cls, data_dir: Path) -> LocalSecrets:
        """Read the stack's secrets, creating them on first start."""
        from infra.local.emulators.supabase_auth import generate_es256_jwk

        path = data_dir / "secrets.json"
        if path.exists():
            return cls(**json.loads(path.read_text()))
        kid = "local-" + secrets.token_hex(4)
        pem, jwk = generate_es256_jwk(kid)
        created = cls(jwt_secret=secrets.token_urlsafe(32), es256_kid=kid, es256_private_pem=pem, es256_jwk=jwk)
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(created.__dict__))
        path.chmod(0o600)
        return created


@dataclass
class Databases:
    """The embedded (or configured) Postgres and Redis of one stack; `stop` ends the embedded ones."""

    data_dir: Path
    database_url: str = ""
    redis_url: str = ""
    handles: list[EmbeddedPostgres | EmbeddedRedis] = field(default_factory=list)
    lock: DataDirLock | None = None

    def stop(self) -> None:
        """Stop every embedded server, then anything still running from the data dir (say, a server whose
        start was interrupted before it was recorded), and give up the data dir."""
        try:
            while self.handles:
                handle = self.handles.pop()
                try:
                    handle.stop()
                except Exception:
                    log.exception("stopping %s failed", type(handle).__name__)
        finally:
            if self.lock is not None:
                stop_leftovers(self.data_dir)
                self.lock.release()
                self.lock = None


def start_postgres(data_dir: Path, handles: list[Any]) -> str:
    """`DATABASE_URL`, or an embedded PostgreSQL in `<data dir>/pgdata`, appended to `handles` (stop it)."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres.start(data_dir / "pgdata")
    handles.append(server)
    return server.uri


def start_databases(data_dir: Path, dbs: Databases | None = None) -> Databases:
    """Postgres from `DATABASE_URL` or embedded; Redis from `REDIS_URL` or embedded (filling `dbs` as they start).

    Embedded servers live in `data_dir`, which this process then owns (a second stack on it waits, then fails).
    """
    dbs = dbs if dbs is not None else Databases(data_dir)
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        dbs.lock = DataDirLock(data_dir)
    dbs.database_url = start_postgres(data_dir, dbs.handles)
    dbs.redis_url = os.environ.get("REDIS_URL", "")
    if not dbs.redis_url:
        redis = EmbeddedRedis.start(data_dir)
        dbs.handles.append(redis)
        dbs.redis_url = redis.url
    return dbs


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP end the process as Ctrl-C does (KeyboardInterrupt), so `finally` blocks run;
    SIGINT does so even where it was inherited as ignored (a background job of a script)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def ignore_signals() -> None:
    """Ignore SIGINT, SIGTERM and SIGHUP from now on (while shutting down: a second Ctrl-C must not cut it short)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def exit_with_parent(poll_seconds: float = 0.5) -> None:
    """SIGTERM this process once its parent is gone (killed test runner or demo), from a daemon thread."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        log.info("parent process %d is gone; stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def setup_database(database_url: str) -> list[str]:
    """Bootstrap Supabase's roles where absent, create checkpointer tables, apply migrations."""
    from shared.db.migrate import setup_database as setup

    return setup(database_url, bootstrap_sql=BOOTSTRAP_SQL)


def emulator_config(*, base_url: str, dbs: Databases, local: LocalSecrets, webhook_url: str,
                    backoff_scale: float = 1.0, cron_seconds: float = 60.0) -> EmulatorConfig:
    """One config for all emulators of a stack served at `base_url`."""
    return EmulatorConfig(
        database_url=dbs.database_url, redis_url=dbs.redis_url, public_base_url=base_url,
        phonepe_webhook_url=webhook_url, supabase_jwks={"keys": [local.es256_jwk]},
        qstash_backoff_scale=backoff_scale, qstash_cron_seconds=cron_seconds,
        phonepe_refund_settle_seconds=10.0,
    )


def function_env(*, emulators_url: str, dbs: Databases, local: LocalSecrets, config: EmulatorConfig,
                 function_urls: dict[str, str] | None = None, functions_url: str | None = None) -> dict[str, str]:
    """The environment every function gets in the local stack: base URLs point at the emulators."""
    from infra.local.emulators import meta
    from infra.local.emulators.tavily import corpus_hosts

    env = {
        "MUSE_ENV": "local",
        "DATABASE_URL": dbs.database_url,
        "QSTASH_URL": f"{emulators_url}/qstash",
        "QSTASH_TOKEN": config.qstash_token,
        "QSTASH_CURRENT_SIGNING_KEY": config.qstash_current_signing_key,
        "QSTASH_NEXT_SIGNING_KEY": config.qstash_next_signing_key,
        "UPSTASH_REDIS_REST_URL": f"{emulators_url}/upstash-redis",
        "UPSTASH_REDIS_REST_TOKEN": config.upstash_redis_token,
        "TAVILY_API_KEY": config.tavily_api_key,
        "TAVILY_BASE_URL": f"{emulators_url}/tavily",
        "PHONEPE_BASE_URL": f"{emulators_url}/phonepe",
        "PHONEPE_OAUTH_URL": f"{emulators_url}/phonepe",
        "PHONEPE_CLIENT_ID": config.phonepe_client_id,
        "PHONEPE_CLIENT_SECRET": config.phonepe_client_secret,
        "PHONEPE_CLIENT_VERSION": config.phonepe_client_version,
        "PHONEPE_WEBHOOK_USERNAME": config.phonepe_webhook_username,
        "PHONEPE_WEBHOOK_PASSWORD": config.phonepe_webhook_password,
        "SUPABASE_URL": f"{emulators_url}/supabase",
        "SUPABASE_JWT_SECRET": local.jwt_secret,
        "MUSE_EMBEDDING_PROVIDER": "local", "SUPABASE_SERVICE_ROLE_KEY": supabase_storage.LOCAL_SERVICE_ROLE_KEY,
        "MUSE_CHECKOUT_REDIRECT_URL": f"{functions_url or emulators_url}/checkout/return",
        "MUSE_FUNCTION_URL_TEMPLATE": f"{functions_url or emulators_url}/{{name}}",
        "MUSE_FUNCTION_URLS": json.dumps(function_urls or {}),
        "MUSE_URL_ALLOWLIST": ",".join(["127.0.0.0/8", "::1/128", "localhost", *corpus_hosts()]),
        "MUSE_PLAN_DEFAULT_TIER": os.environ.get("MUSE_PLAN_DEFAULT_TIER", "agency"),
        "MUSE_BUDGET_MONTHLY_CAP_USD": os.environ.get("MUSE_BUDGET_MONTHLY_CAP_USD", "1000"),
        "LANGSMITH_TRACING": os.environ.get("LANGSMITH_TRACING", "true"),
        "LANGSMITH_ENDPOINT": f"{emulators_url}/langsmith",
        "LANGSMITH_API_KEY": config.langsmith_api_key,
        "LANGSMITH_PROJECT": "muse-local",
        "META_GRAPH_URL": f"{emulators_url}/meta",
        "META_DIALOG_URL": f"{emulators_url}/meta",
        "META_APP_ID": meta.LOCAL_APP_ID,
        "META_APP_SECRET": meta.LOCAL_APP_SECRET,
        "WHATSAPP_GRAPH_URL": f"{emulators_url}/whatsapp",
        "LINKEDIN_API_URL": f"{emulators_url}/linkedin",
        "LINKEDIN_OAUTH_URL": f"{emulators_url}/linkedin/oauth/v2",
        "LINKEDIN_CLIENT_ID": config.linkedin_client_id,
        "LINKEDIN_CLIENT_SECRET": config.linkedin_client_secret,
        "X_API_URL": f"{emulators_url}/x",
        "X_AUTHORIZE_URL": f"{emulators_url}/x/i/oauth2/authorize",
        "X_CLIENT_ID": config.x_client_id,
        "X_CLIENT_SECRET": config.x_client_secret,
        "RESEND_API_URL": f"{emulators_url}/resend",
        "MUSE_ENCRYPTION_KEYS": LOCAL_ENCRYPTION_KEYS,
        "MUSE_PUBLIC_URL": functions_url or emulators_url,
    }
    if os.environ.get("GEMINI_API_KEY"):
        env["GEMINI_API_KEY"] = os.environ["GEMINI_API_KEY"]
    else:
        env["GEMINI_API_KEY"] = config.gemini_api_key
        env["GEMINI_BASE_URL"] = f"{emulators_url}/gemini"
        env["MUSE_QA_JUDGE"] = "false"
    return env


def emulator_apps(config: EmulatorConfig) -> dict[str, Any]:
    """Every emulator, keyed by its mount prefix."""
    from infra.local.emulators import (
        gemini,
        langsmith,
        linkedin,
        meta,
        phonepe,
        qstash,
        resend,
        supabase_auth,
        tavily,
        upstash_redis,
        whatsapp,
        x,
    )

    return {
        "/qstash": qstash.create_app(config),
        "/gemini": gemini.create_app(config),
        "/tavily": tavily.create_app(config),
        "/phonepe": phonepe.create_app(config),
        "/upstash-redis": upstash_redis.create_app(config),
        "/supabase": supabase_auth.create_app(config),
        "/supabase/storage": supabase_storage.create_app(config),
        "/langsmith": langsmith.create_app(config),
        "/meta": meta.create_app(config),
        "/whatsapp": whatsapp.create_app(config),
        "/linkedin": linkedin.create_app(config),
        "/x": x.create_app(config),
        "/resend": resend.create_app(config),
    }


def _root_path_fix(app: Callable[..., Any]) -> Callable[..., Any]:
    """functions-framework answers 308 for an empty PATH_INFO (a POST to exactly `/planner`)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not environ.get("PATH_INFO"):
            environ["PATH_INFO"] = "/"
        return app(environ, start_response)

    return wrapped


def function_apps() -> dict[str, Any]:
    """Every function of the roster loaded as functions-framework loads it in its service, keyed by local path."""
    from functions_framework import create_app

    return {
        spec.local_path: _root_path_fix(create_app(target=spec.name, source=str(REPO_ROOT / spec.source)))
        for spec in load_roster().values()
    }


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    body = json.dumps({"error": {"code": "not_found", "message": f"Nothing is served at {environ.get('PATH_INFO')}."}})
    return Response(body, status=404, mimetype="application/json")(environ, start_response)


def _checkout_return(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
    html = "<html><body><h1>Payment submitted</h1><p>Muse confirms it with PhonePe and resumes the campaign.</p>"
    return Response(html, mimetype="text/html")(environ, start_response)


def main(argv: list[str] | None = None) -> int:
    """Start the stack and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MUSE_DATA_DIR", DEFAULT_DATA_DIR)))
    parser.add_argument("--emulators-only", action="store_true")
    parser.add_argument("--functions-url", default=None, help="Base URL of the functions (emulators-only mode).")
    parser.add_argument("--qstash-backoff-scale", type=float,
                        default=float(os.environ.get("MUSE_QSTASH_BACKOFF_SCALE", "1.0")))
    parser.add_argument("--qstash-cron-seconds", type=float,
                        default=float(os.environ.get("MUSE_QSTASH_CRON_SECONDS", "60")),
                        help="Real seconds per cron minute of QStash schedules (60 = real time).")
    parser.add_argument("--webhook-url", default=None, help="Where the PhonePe emulator sends webhooks.")
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="Stop (databases included) when the process that started this one is gone.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    exit_on_signals()
    if args.exit_with_parent:
        exit_with_parent()
    dbs = Databases(args.data_dir)
    stoppers: list[Callable[[], None]] = []
    try:
        serve(args, dbs, stoppers)
    except KeyboardInterrupt:
        pass
    finally:
        ignore_signals()
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception:
                log.exception("stopping %s failed", stop)
        dbs.stop()
    return 0


def serve(args: argparse.Namespace, dbs: Databases, stoppers: list[Callable[[], None]]) -> None:
    """Start the databases (into `dbs`), the emulators and the functions, and serve until interrupted.

    What it starts is appended to `stoppers` (or to `dbs`) as soon as it runs, so `main` stops it however
    this ends.
    """
    from werkzeug.serving import make_server

    base = f"http://127.0.0.1:{args.port}"
    functions_url = args.functions_url or base
    start_databases(args.data_dir, dbs)
    applied = setup_database(dbs.database_url)
    log.info("database ready (%d migrations applied now)", len(applied))
    local = LocalSecrets.load_or_create(args.data_dir)
    webhook_url = args.webhook_url or f"{functions_url}/webhooks/phonepe"
    config = emulator_config(base_url=base, dbs=dbs, local=local, webhook_url=webhook_url,
                             backoff_scale=args.qstash_backoff_scale, cron_seconds=args.qstash_cron_seconds)
    env = function_env(emulators_url=base, dbs=dbs, local=local, config=config, functions_url=functions_url)
    (args.data_dir / "env.json").write_text(json.dumps(env, indent=1))
    os.environ.update(env)
    mounts = emulator_apps(config)
    stoppers.append(mounts["/qstash"].extensions["qstash_emulator"].stop)
    if not args.emulators_only:
        mounts |= function_apps()
        mounts["/checkout/return"] = _checkout_return
    server = make_server("127.0.0.1", args.port, DispatcherMiddleware(_not_found, mounts), threaded=True)
    stoppers.append(server.server_close)
    if not args.no_seed:
        from infra.local.seed import seed_demo

        threading.Thread(target=seed_demo, args=(env,), daemon=True, name="seed").start()
    if not args.emulators_only:
        threading.Thread(target=schedule_sweeper, args=(env,), daemon=True, name="schedules").start()
    print(f"Muse local stack on {base} (data in {args.data_dir})", flush=True)
    server.serve_forever()


def schedule_sweeper(env: dict[str, str]) -> None:
    """Create the sweeper's QStash schedule once the stack serves, as `python -m infra.schedules` does at deploy."""
    from qstash import QStash

    from shared.runtime.sweeper import ensure_schedule
    from shared.settings import Settings

    settings = Settings(**env)  # type: ignore[arg-type]
    client = QStash(settings.qstash_token.get_secret_value(), base_url=settings.qstash_url)
    for _ in range(50):
        try:
            log.info("sweeper schedule %s", ensure_schedule(settings, client))
            return
        except Exception:  # the server may not accept connections yet
            time.sleep(0.2)
    log.warning("could not create the sweeper schedule")


if __name__ == "__main__":
    sys.exit(main())
