"""`make bench`: what the runtime spine costs, measured against a baseline in the same run.

Prints one figure per line as `name: value unit`:
- the platform overhead of one step (signature check, lease, checkpoint load and save, outcome,
  publish to QStash) with no-op node bodies, p50/p95, and its ratio to a bare in-process
  `graph.invoke` of the same step with `PostgresSaver` on the same database;
- each function's cold start: process start → first 2xx answer.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

import httpx
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph

from infra.local.emulators.qstash import sign
from infra.local.processes import FUNCTIONS, EmulatorProcess, FunctionProcess, free_port, start_emulators
from infra.local.serve import serve_in_thread
from infra.local.token import mint
from shared.db.knowledge import insert_document, mark_failed
from shared.db.pool import connect, create_pool
from shared.db.threads import ThreadRepository
from shared.db.workspaces import ensure_workspace
from shared.deps import DepsOverrides
from shared.messages import StepMessage
from shared.outbox import Outbox
from shared.queue import qstash_queue, qstash_receiver, verify_delivery
from shared.runtime.checkpointer import create_checkpointer, strict_serializer
from shared.runtime.step import StepRuntime
from shared.runtime.wiring import build_deps
from shared.settings import Settings
from shared.testing.fakes import CannedSearch, ScriptedModel
from shared.webhook_auth import expected_authorization

BENCH_OWNERS = {"a": "planner", "b": "research", "c": "content"}


class BenchState(TypedDict, total=False):
    campaign_id: str
    workspace_id: str
    kind: str
    brief: dict[str, Any]
    feedback: list[str]
    usage: list[dict[str, Any]]
    n: int


def _noop(value: int) -> Callable[[BenchState], dict[str, int]]:
    def node(state: BenchState) -> dict[str, int]:
        return {"n": value}

    return node


def bench_graph() -> StateGraph:
    """a → b → c with no-op bodies: what remains of a step is the platform."""
    graph = StateGraph(BenchState)
    for i, name in enumerate(BENCH_OWNERS):
        graph.add_node(name, _noop(i))
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", "c")
    graph.add_edge("c", END)
    return graph


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def line(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:.3f} {unit}", flush=True)


def _sink(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


def bench_step_overhead(emulators: EmulatorProcess, *, steps: int = 150, warmup: int = 15) -> None:
    env = json.loads((emulators.data_dir / "env.json").read_text())
    sink = serve_in_thread(_sink)
    settings = Settings(**{**env, "MUSE_FUNCTION_URL_TEMPLATE": sink.url + "/{name}"})  # type: ignore[arg-type]
    pool = create_pool(settings.database_url, max_size=4)
    try:
        graph = bench_graph()
        fenced = graph.compile(checkpointer=create_checkpointer(pool))
        plain_saver = PostgresSaver(pool, serde=strict_serializer())
        plain_saver.supports_pipeline = False
        plain = graph.compile(checkpointer=plain_saver)
        fakes = CannedSearch()
        deps = build_deps(settings, pool, overrides=DepsOverrides(model=ScriptedModel(), web=fakes, knowledge=fakes))
        queue = qstash_queue(settings)
        receiver = qstash_receiver(settings)
        runtimes = {f: StepRuntime(function=f, settings=settings, graph=fenced, deps=deps,
                                   threads=ThreadRepository(pool), outbox=Outbox(pool=pool, queue=queue),
                                   receiver=receiver,
                                   owners=BENCH_OWNERS) for f in ("planner", "research")}
        key = settings.qstash_current_signing_key.get_secret_value()
        with connect(settings.database_url) as conn:
            workspace_id = ensure_workspace(conn, slug=f"bench-{uuid.uuid4().hex[:8]}", name="bench",
                                            user_id=str(uuid.uuid4()))
        full: list[float] = []
        bare: list[float] = []
        verify: list[float] = []
        publish: list[float] = []
        for i in range(steps + warmup):
            campaign_id = uuid.uuid4()
            with connect(settings.database_url) as conn:
                conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief) "
                             "VALUES (%s, %s, %s, 'move', '{}')", (campaign_id, workspace_id, uuid.uuid4()))
            start = StepMessage(kind="start", campaign_id=campaign_id)
            body = json.dumps(start.model_dump(mode="json", exclude_none=True)).encode()
            runtimes["planner"].handle(body, sign(body, settings.function_url("planner"), key))
            with connect(settings.database_url) as conn:
                head = conn.execute("SELECT checkpoint_id FROM public.checkpoints WHERE thread_id = %s "
                                    "ORDER BY checkpoint_id DESC LIMIT 1", (str(campaign_id),)).fetchone()
            message = StepMessage(kind="continue", campaign_id=campaign_id,
                                  expected_checkpoint_id=head["checkpoint_id"])
            body = json.dumps(message.model_dump(mode="json", exclude_none=True)).encode()
            signature = sign(body, settings.function_url("research"), key)
            t0 = time.perf_counter()
            reply = runtimes["research"].handle(body, signature)
            t1 = time.perf_counter()
            if reply.body.get("status") != "running":
                raise RuntimeError(f"the measured step did not advance: {reply.body}")

            thread = {"configurable": {"thread_id": f"bare-{campaign_id}"}}
            plain.invoke({"campaign_id": str(campaign_id), "n": 0}, thread, interrupt_before=["b", "c"])
            t2 = time.perf_counter()
            plain.invoke(None, thread, interrupt_before=["c"])
            t3 = time.perf_counter()

            t4 = time.perf_counter()
            verify_delivery(receiver, body=body, signature=signature, url=settings.function_url("research"))
            t5 = time.perf_counter()
            queue.publish("content", StepMessage(kind="continue", campaign_id=campaign_id,
                                                 expected_checkpoint_id=f"bench-{i}"))
            t6 = time.perf_counter()
            if i >= warmup:
                full.append((t1 - t0) * 1000)
                bare.append((t3 - t2) * 1000)
                verify.append((t5 - t4) * 1000)
                publish.append((t6 - t5) * 1000)
        line("step_overhead_p50", pct(full, 0.5), "ms")
        line("step_overhead_p95", pct(full, 0.95), "ms")
        line("bare_invoke_p50", pct(bare, 0.5), "ms")
        line("bare_invoke_p95", pct(bare, 0.95), "ms")
        line("step_overhead_ratio", pct(full, 0.5) / pct(bare, 0.5), "x")
        line("step_overhead_ratio_p95", pct(full, 0.95) / pct(bare, 0.95), "x")
        line("signature_verify_p50", pct(verify, 0.5), "ms")
        line("qstash_publish_p50", pct(publish, 0.5), "ms")
        line("step_samples", len(full), "steps")
    finally:
        pool.close()
        sink.stop()


def _first_2xx(request: Callable[[], httpx.Response], deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if request().is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.005)
    raise TimeoutError("no 2xx before the deadline")


def _probe(name: str, url: str, *, done: uuid.UUID, document: uuid.UUID, key: str, auth: str,
           conversation: uuid.UUID, bearer: str) -> Callable[[], httpx.Response]:
    """The cheapest real request that gets a 2xx from function `name`."""
    if name == "api":
        return lambda: httpx.get(f"{url}api/v1/openapi.json", timeout=5)
    if name == "chat":
        return lambda: httpx.get(f"{url}api/v1/chat/{conversation}/events", timeout=10,
                                 headers={"Authorization": f"Bearer {bearer}"})
    if name == "phonepe_webhook":
        payload = {"event": "checkout.order.completed",
                   "payload": {"merchantOrderId": "MUSE-cold-1", "state": "COMPLETED"}}
        return lambda: httpx.post(url, json=payload, headers={"Authorization": auth}, timeout=5)
    if name == "ingest":
        body = json.dumps({"kind": "ingest", "document_id": str(document)}).encode()
    elif name == "sweeper":
        body = json.dumps({"kind": "sweep"}).encode()
    elif name == "publish":
        body = json.dumps({"kind": "publish", "publication_id": str(uuid.uuid4()), "version": 1}).encode()
    elif name == "scheduler":
        body = json.dumps({"schedule_id": str(uuid.uuid4())}).encode()
    elif name == "subscriptions":
        body = json.dumps({"kind": "setup_check", "merchant_subscription_id": "MS-cold-1"}).encode()
    else:
        body = json.dumps({"kind": "continue", "campaign_id": str(done), "expected_checkpoint_id": "x"}).encode()
    return lambda: httpx.post(url, content=body, timeout=10, headers={
        "Content-Type": "application/json", "Upstash-Signature": sign(body, url, key)})


def bench_cold_starts(emulators: EmulatorProcess, data_dir: Path, *, runs: int = 3) -> None:
    env_file = json.loads((emulators.data_dir / "env.json").read_text())
    with connect(env_file["DATABASE_URL"]) as conn:
        slug, member = f"cold-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
        workspace_id = ensure_workspace(conn, slug=slug, name="cold", user_id=member)
        conversation = uuid.uuid4()
        conn.execute("INSERT INTO public.conversations (id, workspace_id, kind) VALUES (%s, %s, 'chat')",
                     (conversation, workspace_id))
        done = uuid.uuid4()
        conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief, status) "
                     "VALUES (%s, %s, %s, 'move', '{}', 'completed')", (done, workspace_id, uuid.uuid4()))
        ready_doc = uuid.uuid4()
        insert_document(conn, document_id=ready_doc, workspace_id=workspace_id, title="cold", kind="text",
                        source="text", tags=(), storage_path=None, content_type=None, byte_size=None,
                        created_by=None)
        mark_failed(conn, ready_doc, "cold-start probe")
    key = env_file["QSTASH_CURRENT_SIGNING_KEY"]
    auth = expected_authorization(env_file["PHONEPE_WEBHOOK_USERNAME"], env_file["PHONEPE_WEBHOOK_PASSWORD"])
    bearer = mint(env_file["SUPABASE_JWT_SECRET"], user_id=member, workspace_id=workspace_id, slug=slug,
                  issuer="http://127.0.0.1/auth/v1")
    for name in FUNCTIONS:
        samples = []
        for _ in range(runs):
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            env = emulators.function_env({name: url})
            fn = FunctionProcess(name, port, env, data_dir / f"cold-{name}.log")
            request = _probe(name, url, done=done, document=ready_doc, key=key, auth=auth,
                             conversation=conversation, bearer=bearer)
            started = time.monotonic()
            fn.spawn()
            try:
                _first_2xx(request, started + 60)
                samples.append(time.monotonic() - started)
            finally:
                fn.stop()
        line(f"cold_start_{name}", statistics.median(samples), "s")


@contextmanager
def running_emulators(data_dir: Path) -> Iterator[EmulatorProcess]:
    emulators = start_emulators(data_dir, webhook_url="http://127.0.0.1:9/", functions_url="http://127.0.0.1:9")
    try:
        yield emulators
    finally:
        emulators.stop()


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="muse-bench-") as tmp, running_emulators(Path(tmp)) as emulators:
        bench_step_overhead(emulators)
        bench_cold_starts(emulators, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
