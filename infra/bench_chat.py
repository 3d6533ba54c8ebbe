"""Chat benchmarks: how soon a turn's first event arrives, and what the chat function adds to a turn.

Prints one figure per line as `name: value unit` (lines starting with `#` say how it was measured):
- `chat_first_event_ms_p50` / `_p95`: request sent → first SSE event (`id:` frame: the user's stored
  message) received, over HTTP from the chat function in its own process (functions-framework,
  gunicorn, 1 worker × 8 threads), warm, Gemini emulated with no added latency; target p95 ≤ 200 ms;
- `chat_first_byte_ms_p50`: request sent → first byte of the stream (the `retry:` preamble);
- `chat_turn_ms_p50` through the function (request → `done`) and `chat_bare_turn_ms_p50` of a bare
  in-process `run_turn` of the same conversation graph with the same deps (`chat_deps`, a `MemorySink`)
  and the same durability on the same database and emulator, and `chat_turn_overhead_ratio` = function
  p50 / bare p50; `chat_bare_turn_exit_ms_p50` is the bare turn with the graph's default durability.

Run: `python -m infra.bench_chat [--turns 40]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from langgraph.types import Durability

from infra.local.processes import FunctionProcess, free_port, start_emulators
from infra.local.seed import ensure_local_workspace
from infra.local.stack import LocalSecrets
from infra.local.token import mint
from shared.auth import Principal, verify_token
from shared.chat.agent import MemorySink, chat_deps
from shared.chat.service import DURABILITY
from shared.conversations import ChatOptions, compile_chat_graph, run_turn
from shared.db.pool import connect, create_pool
from shared.runtime.checkpointer import create_checkpointer
from shared.settings import Settings

WARMUP_TURNS = 4
TURNS_PER_CONVERSATION = 5
MESSAGE = "Suggest a subject line for our Diwali hamper email, turn {n}"


def line(name: str, value: float, unit: str) -> None:
    print(f"{name}: {value:.2f} {unit}", flush=True)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def timed_turn(http: httpx.Client, url: str, auth: dict[str, str], body: dict[str, Any]) -> tuple[float, float, float,
                                                                                                   str]:
    """(first byte ms, first event ms, done ms, conversation id) of one turn over HTTP."""
    start = time.perf_counter()
    first_byte = first_event = 0.0
    buffer = ""
    with http.stream("POST", url, json=body, headers=auth) as response:
        response.raise_for_status()
        for chunk in response.iter_text():
            now = (time.perf_counter() - start) * 1000
            first_byte = first_byte or now
            buffer += chunk
            if not first_event and "\nid: " in f"\n{buffer}" and "\n\n" in buffer.split("id: ", 1)[-1]:
                first_event = now
        done = (time.perf_counter() - start) * 1000
    if "event: done" not in buffer:
        raise RuntimeError(f"the turn did not end with done: {buffer[-500:]}")
    return first_byte, first_event, done, response.headers["X-Conversation-Id"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="muse-bench-chat-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        emulators = start_emulators(data_dir, webhook_url=url, functions_url=url)
        chat = None
        try:
            env = emulators.function_env({"chat": url}, WORKERS="1", THREADS="8")
            chat = FunctionProcess("chat", port, env, data_dir / "chat.log")
            chat.start()
            return run(args.turns, env, data_dir, f"{url}api/v1/chat/stream")
        finally:
            if chat is not None:
                chat.stop()
            emulators.stop()


def run(turns: int, env: dict[str, str], data_dir: Path, url: str) -> int:
    """Interleave a turn through the function with bare in-process turns (sync, then exit durability), so all
    three meet the same background load."""
    slug = f"bench-chat-{uuid.uuid4().hex[:6]}"
    workspace_id, user_id = ensure_local_workspace(env["DATABASE_URL"], slug)
    token = mint(LocalSecrets.load_or_create(data_dir).jwt_secret, user_id=user_id, workspace_id=workspace_id,
                 slug=slug, issuer="http://127.0.0.1/auth/v1")
    auth = {"Authorization": f"Bearer {token}"}
    settings = Settings(**env)  # type: ignore[arg-type]
    bare = BareTurns(settings, verify_token(f"Bearer {token}", settings), workspace_id)
    first_bytes, first_events, dones, bare_sync, bare_exit = [], [], [], [], []
    try:
        with httpx.Client(timeout=60) as http:
            conversation: str | None = None
            for n in range(WARMUP_TURNS + turns):
                if n % TURNS_PER_CONVERSATION == 0:
                    conversation = None
                    bare.new_conversations()
                body: dict[str, Any] = {"message": MESSAGE.format(n=n), "context": {"includeResources": False}}
                if conversation:
                    body["conversationId"] = conversation
                first_byte, first_event, done, conversation = timed_turn(http, url, auth, body)
                sync_ms, exit_ms = bare.turn(MESSAGE.format(n=n), DURABILITY), bare.turn(MESSAGE.format(n=n), "exit")
                if n >= WARMUP_TURNS:
                    first_bytes.append(first_byte)
                    first_events.append(first_event)
                    dones.append(done)
                    bare_sync.append(sync_ms)
                    bare_exit.append(exit_ms)
    finally:
        bare.pool.close()
    with connect(env["DATABASE_URL"]) as conn:
        kinds = conn.execute("SELECT kind, count(*)::float / count(DISTINCT turn_id) AS n FROM public.chat_events "
                             "WHERE workspace_id = %s GROUP BY kind ORDER BY kind", (workspace_id,)).fetchall()
    print("# events committed per turn: " + ", ".join(f"{r['kind']} {r['n']:.1f}" for r in kinds), flush=True)
    print(f"# {turns} warm turns ({TURNS_PER_CONVERSATION} per conversation) through the chat function over HTTP, "
          "Gemini emulated at zero latency, each followed by bare in-process run_turns with the same deps",
          flush=True)
    line("chat_first_event_ms_p50", statistics.median(first_events), "ms")
    line("chat_first_event_ms_p95", p95(first_events), "ms")
    line("chat_first_byte_ms_p50", statistics.median(first_bytes), "ms")
    line("chat_turn_ms_p50", statistics.median(dones), "ms")
    line("chat_bare_turn_ms_p50", statistics.median(bare_sync), "ms")
    line("chat_turn_overhead_ratio", statistics.median(dones) / statistics.median(bare_sync), "x")
    print("# the chat function checkpoints every node (durability sync, so a killed turn never drops the next "
          "message), as the bare baseline above does; the bare turn with the graph's default (one checkpoint "
          "per turn):", flush=True)
    line("chat_bare_turn_exit_ms_p50", statistics.median(bare_exit), "ms")
    return 0


class BareTurns:
    """`run_turn` in this process with the deps the chat function builds (`chat_deps`, a `MemorySink`)."""

    def __init__(self, settings: Settings, principal: Principal, workspace_id: str) -> None:
        self.settings, self.principal, self.workspace_id = settings, principal, workspace_id
        self.pool = create_pool(settings.database_url, max_size=4)
        self.graph = compile_chat_graph(create_checkpointer(self.pool))
        self.conversations: dict[str, str] = {}

    def new_conversations(self) -> None:
        self.conversations = {}

    def turn(self, message: str, durability: Durability) -> float:
        """Milliseconds of one turn (deps built, as the function builds them per turn)."""
        conversation = self.conversations.setdefault(durability, str(uuid.uuid4()))
        start = time.perf_counter()
        deps = chat_deps(self.settings, self.pool, workspace_id=self.workspace_id, principal=self.principal,
                         options=ChatOptions(include_resources=False), events=MemorySink())
        run_turn(self.graph, deps, conversation_id=conversation, workspace_id=self.workspace_id, message=message,
                 durability=durability)
        return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    sys.exit(main())
