"""What one LangSmith trace per campaign costs a step, measured against the same step untraced in the same run.

`python -m infra.bench_trace` prints `name: value unit` lines:
- `step_untraced_p50/p95` and `step_traced_p50/p95`: the step of `infra.bench` (no-op nodes: signature,
  lease, checkpoint, outcome, publish) with tracing off, and on, to a LangSmith emulator on loopback
  (the step's graph run and node runs under the campaign's root, flushed before the step answers;
  zstd uploads as the emulator's `/info` asks, unless `LANGSMITH_DISABLE_RUN_COMPRESSION=true`);
  the two variants alternate step by step on fresh campaigns;
- `trace_overhead_ratio` (traced p50 / untraced p50) and `trace_overhead_p50` (the difference, ms);
- `span_untraced_ns`: what `shared.tracing.span` (around every Gemini call and tool) costs when nothing is
  traced.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

import langsmith

from infra.bench import BENCH_OWNERS, _sink, bench_graph, line, pct, running_emulators
from infra.local.emulators import langsmith as collector
from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.qstash import sign
from infra.local.processes import EmulatorProcess
from infra.local.serve import serve_in_thread
from shared.db.pool import connect, create_pool
from shared.db.threads import ThreadRepository
from shared.db.workspaces import ensure_workspace
from shared.deps import DepsOverrides
from shared.messages import StepMessage
from shared.outbox import Outbox
from shared.queue import qstash_queue, qstash_receiver
from shared.runtime.checkpointer import create_checkpointer
from shared.runtime.step import StepRuntime
from shared.runtime.wiring import build_deps
from shared.settings import Settings
from shared.testing.fakes import CannedSearch, ScriptedModel
from shared.tracing import campaign_trace, new_campaign_id, span


def bench_trace_overhead(emulators: EmulatorProcess, *, steps: int = 120, warmup: int = 15) -> None:
    env = json.loads((emulators.data_dir / "env.json").read_text())
    sink = serve_in_thread(_sink)
    traces = serve_in_thread(collector.create_app(EmulatorConfig(database_url="")))
    settings = Settings(**{**env, "MUSE_FUNCTION_URL_TEMPLATE": sink.url + "/{name}"})  # type: ignore[arg-type]
    pool = create_pool(settings.database_url, max_size=4)
    client = langsmith.Client(api_url=traces.url, api_key=EmulatorConfig(database_url="").langsmith_api_key)
    try:
        graph = bench_graph().compile(checkpointer=create_checkpointer(pool))
        fakes = CannedSearch()
        deps = build_deps(settings, pool, overrides=DepsOverrides(model=ScriptedModel(), web=fakes, knowledge=fakes))
        queue = qstash_queue(settings)
        receiver = qstash_receiver(settings)

        def runtime(function: str, tracer: langsmith.Client | None) -> StepRuntime:
            return StepRuntime(function=function, settings=settings, graph=graph, deps=deps,
                               threads=ThreadRepository(pool), outbox=Outbox(pool=pool, queue=queue),
                               receiver=receiver, owners=BENCH_OWNERS, tracer=tracer)

        planner = runtime("planner", None)
        research = {False: runtime("research", None), True: runtime("research", client)}
        key = settings.qstash_current_signing_key.get_secret_value()
        with connect(settings.database_url) as conn:
            workspace_id = ensure_workspace(conn, slug=f"bench-{uuid.uuid4().hex[:8]}", name="bench",
                                            user_id=str(uuid.uuid4()))
        samples: dict[bool, list[float]] = {False: [], True: []}
        for i in range(2 * (steps + warmup)):
            traced = i % 2 == 1
            campaign_id = new_campaign_id()
            with connect(settings.database_url) as conn:
                conn.execute("INSERT INTO public.campaigns (id, workspace_id, created_by, kind, brief) "
                             "VALUES (%s, %s, %s, 'move', '{}')", (campaign_id, workspace_id, uuid.uuid4()))
            trace = campaign_trace(campaign_id, project=settings.langsmith_project) if traced else None
            start = StepMessage(kind="start", campaign_id=campaign_id, trace=trace)
            body = json.dumps(start.model_dump(mode="json", exclude_none=True)).encode()
            planner.handle(body, sign(body, settings.function_url("planner"), key))
            with connect(settings.database_url) as conn:
                head = conn.execute("SELECT checkpoint_id FROM public.checkpoints WHERE thread_id = %s "
                                    "ORDER BY checkpoint_id DESC LIMIT 1", (str(campaign_id),)).fetchone()
            message = StepMessage(kind="continue", campaign_id=campaign_id,
                                  expected_checkpoint_id=head["checkpoint_id"], trace=trace)
            body = json.dumps(message.model_dump(mode="json", exclude_none=True)).encode()
            signature = sign(body, settings.function_url("research"), key)
            t0 = time.perf_counter()
            reply = research[traced].handle(body, signature)
            t1 = time.perf_counter()
            if reply.body.get("status") != "running":
                raise RuntimeError(f"the measured step did not advance: {reply.body}")
            if i >= 2 * warmup:
                samples[traced].append((t1 - t0) * 1000)
        off, on = samples[False], samples[True]
        line("step_untraced_p50", pct(off, 0.5), "ms")
        line("step_untraced_p95", pct(off, 0.95), "ms")
        line("step_traced_p50", pct(on, 0.5), "ms")
        line("step_traced_p95", pct(on, 0.95), "ms")
        line("trace_overhead_p50", pct(on, 0.5) - pct(off, 0.5), "ms")
        line("trace_overhead_ratio", pct(on, 0.5) / pct(off, 0.5), "x")
        line("trace_overhead_ratio_p95", pct(on, 0.95) / pct(off, 0.95), "x")
        line("trace_step_samples", len(on), "steps")
        line("span_untraced_ns", _span_cost(), "ns")
    finally:
        client.cleanup()
        pool.close()
        traces.stop()
        sink.stop()


def _span_cost(calls: int = 200_000) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        with span("gemini", "llm", {}):
            pass
    return (time.perf_counter() - started) / calls * 1e9


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="muse-bench-trace-") as tmp, running_emulators(Path(tmp)) as emulators:
        bench_trace_overhead(emulators)
    return 0


if __name__ == "__main__":
    sys.exit(main())
