"""What the plan's rate limits cost a request, printed as `name: value unit` lines.

On an embedded Postgres (or `DATABASE_URL`) and the Upstash Redis REST emulator over an embedded Redis, on
loopback: one limiter check (the official `upstash-ratelimit` SDK's sliding-window script), then the API's
`GET /api/v1/campaigns` through the real dispatcher with the edge gate counting each request, against the
same request while the limiter rests (baseline: no Redis call), and an outage (a refused port: the first
check fails, later ones skip Redis).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import flask

from infra.bench_chat_caches import TOKEN, _timings, upstash
from infra.bench_memory import postgres
from infra.local.token import mint
from shared.api import app as api_app
from shared.api.service import Api
from shared.db.pool import connect, create_pool
from shared.db.workspaces import ensure_workspace
from shared.plans import TIERS, rate_limiter, set_workspace_tier
from shared.settings import Settings, get_settings
from shared.testing.fakes import RecordingQueue
from shared.testing.payments import FakePhonePe

SECRET = "bench-limits-jwt-secret-of-32-bytes-or-more"
ENV = {
    "QSTASH_URL": "http://127.0.0.1:9/qstash", "QSTASH_TOKEN": "t",
    "QSTASH_CURRENT_SIGNING_KEY": "sig_bench_current_000000000000",
    "QSTASH_NEXT_SIGNING_KEY": "sig_bench_next_00000000000000000", "UPSTASH_REDIS_REST_TOKEN": TOKEN,
    "GEMINI_API_KEY": "k", "TAVILY_API_KEY": "k", "PHONEPE_CLIENT_ID": "c", "PHONEPE_CLIENT_SECRET": "s",
    "PHONEPE_WEBHOOK_USERNAME": "u", "PHONEPE_WEBHOOK_PASSWORD": "p", "SUPABASE_JWT_SECRET": SECRET,
    "SUPABASE_SERVICE_ROLE_KEY": "k",
}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def _line(name: str, p50: float, p95: float) -> None:
    print(f"{name}_ms_p50: {p50:.2f} ms", flush=True)
    print(f"{name}_ms_p95: {p95:.2f} ms", flush=True)


def bench(dsn: str, url: str, n: int) -> None:
    with environment({**ENV, "DATABASE_URL": dsn, "UPSTASH_REDIS_REST_URL": url}):
        settings = get_settings()
        limiter = rate_limiter(settings)
        workspace = str(uuid.uuid4())
        _line("rate_limit_check", *_timings(lambda: limiter.check("api_requests_per_minute", workspace,
                                                                   TIERS["agency"]), n))
        pool = create_pool(dsn, max_size=4)
        try:
            slug, user_id = f"bench-rl-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
            with connect(dsn) as conn, conn.transaction():
                workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
            set_workspace_tier(pool, workspace_id=workspace_id, tier_name="agency", actor="system", key=slug)
            token = mint(SECRET, user_id=user_id, workspace_id=workspace_id, slug=slug, issuer="http://127.0.0.1")
            api = Api(settings=settings, pool=pool, queue=RecordingQueue(), phonepe_factory=FakePhonePe)
            original = api_app.api
            api_app.api = lambda: api  # type: ignore[assignment]
            app = flask.Flask("bench-limits")

            def request() -> Callable[[], object]:
                def call() -> object:
                    with app.test_request_context("/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"}):
                        response = api_app.dispatch(flask.request)
                    assert response.status_code == 200, response.get_json()
                    return response
                return call

            try:
                request()()
                counted = _timings(request(), n)
                api.plans.limiter._resting_until = float("inf")
                resting = _timings(request(), n)
            finally:
                api_app.api = original  # type: ignore[assignment]
            _line("rate_limit_edge_request_counted", *counted)
            _line("rate_limit_edge_request_baseline", *resting)
            print(f"rate_limit_edge_overhead_p50: {counted[0] - resting[0]:.2f} ms", flush=True)
            print(f"rate_limit_edge_ratio_p50: {counted[0] / resting[0]:.2f} x", flush=True)
        finally:
            pool.close()
        down = rate_limiter(Settings(**{**ENV, "DATABASE_URL": dsn,  # type: ignore[arg-type]
                                        "UPSTASH_REDIS_REST_URL": "http://127.0.0.1:9/upstash-redis"}))
        first, _ = _timings(lambda: down.check("api_requests_per_minute", workspace, TIERS["free"]), 1)
        rest, _ = _timings(lambda: down.check("api_requests_per_minute", workspace, TIERS["free"]), n)
        print(f"rate_limit_outage_first_ms: {first:.2f} ms", flush=True)
        print(f"rate_limit_outage_resting_ms: {rest:.4f} ms", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200, help="samples per timing")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("muse.plans.limits").setLevel(logging.ERROR)
    with postgres() as dsn, upstash() as url:
        bench(dsn, url, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
