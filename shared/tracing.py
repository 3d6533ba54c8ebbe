"""One LangSmith trace per campaign, across every function and process that advances it.

A campaign's id is a UUIDv7, and it is also the id of the campaign's root run: the root's start
time is the id's own timestamp, so its trace context (the `langsmith-trace` dotted order and the
`baggage` header) can be rebuilt from the id alone. The API starts the root run when it creates
the campaign and puts that context in the start message; every step runs under the context its
message carries (or, for a message built without one, e.g. a PhonePe webhook, the one rebuilt from
the campaign id) and copies it into the messages it sends; the step that ends the campaign ends
the root run. Inside a step, `span` nests model calls (`llm`), tools (`tool`) and searches
(`retriever`) under the graph node that made them; a chat turn is one trace the same way (root
`chat.turn`), its streamed model calls `llm` runs through `traced_stream`.

Tracing never fails the work it observes: every call into the SDK here is guarded, and with no
tracing context a `span` costs a module lookup and a context read (about 2 µs).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar
from urllib.parse import quote
from uuid import UUID

from shared.lazy import lazy_module
from shared.models.pricing import PriceTable, cost_micro_usd, load_price_table
from shared.ports import Usage
from shared.safety.pii import PiiPolicy, trace_anonymizer
from shared.settings import Settings

if TYPE_CHECKING:
    import langsmith
    from langsmith import run_trees
else:
    langsmith = lazy_module("langsmith")
    run_trees = lazy_module("langsmith.run_trees")

log = logging.getLogger("muse.tracing")

TRACE_HEADER = "langsmith-trace"
ROOT_RUN_NAME = "campaign"

T = TypeVar("T")

RunType = Literal["chain", "llm", "tool", "retriever", "embedding"]
CampaignEnd = Literal["completed", "failed", "expired", "cancelled"]


class UsageMetadata(TypedDict, total=False):
    """Token counts and cost of one `llm` run, in LangSmith's `usage_metadata` shape."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_token_details: dict[str, int]
    output_token_details: dict[str, int]
    input_cost: float
    output_cost: float
    total_cost: float


def llm_usage(usage: Usage) -> UsageMetadata:
    """LangSmith's `usage_metadata` of one Gemini call, priced by `shared.models.pricing` when the model has a price.

    `output_tokens` counts thinking too (LangSmith's output is every generated token), so
    `input + output = total` as Gemini's `totalTokenCount` has it.
    """
    output = usage.output_tokens + usage.thinking_tokens
    metadata: UsageMetadata = {
        "input_tokens": usage.prompt_tokens, "output_tokens": output, "total_tokens": usage.prompt_tokens + output,
        "input_token_details": {"cache_read": usage.cached_tokens},
        "output_token_details": {"reasoning": usage.thinking_tokens},
    }
    table = _prices()
    total = cost_micro_usd(usage, table=table)
    if total is not None:
        prompt_only = replace(usage, output_tokens=0, thinking_tokens=0)
        input_cost = cost_micro_usd(prompt_only, table=table) or 0
        metadata |= {"input_cost": input_cost / 1e6, "output_cost": (total - input_cost) / 1e6,
                     "total_cost": total / 1e6}
    return metadata


@cache
def _prices() -> PriceTable:
    return load_price_table()


def langsmith_client(settings: Settings) -> langsmith.Client | None:
    """A LangSmith client when tracing is on (`LANGSMITH_TRACING=true`), else None.

    Every run's inputs, outputs, metadata and error are masked for personal data (`MUSE_PII_TRACE_MODE`,
    default redact) before they leave the process. The SDK's `anonymizer` hook is used rather than
    `hide_inputs`/`hide_outputs`: it covers errors and metadata too, and receives the run already
    serialized to JSON, so messages and pydantic models are masked like plain strings.
    """
    if not settings.langsmith_tracing:
        return None
    api_key = settings.langsmith_api_key.get_secret_value() if settings.langsmith_api_key else None
    return langsmith.Client(api_url=settings.langsmith_endpoint, api_key=api_key,
                            anonymizer=trace_anonymizer(PiiPolicy(mode=settings.pii_trace_mode)))


def new_campaign_id() -> UUID:
    """A campaign id that is also a valid root run id (UUIDv7: its first 48 bits are the creation ms)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62 | rand & (2**62 - 1)
    return UUID(int=value)


def campaign_started_at(campaign_id: UUID) -> datetime | None:
    """The creation instant a UUIDv7 campaign id encodes; None for older (v4) ids, which have no root run."""
    if campaign_id.version != 7:
        return None
    ms = campaign_id.int >> 80
    return datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=ms % 1000 * 1000)


def campaign_trace(campaign_id: UUID, *, project: str,
                   metadata: Mapping[str, str] | None = None) -> dict[str, str]:
    """The trace context (`langsmith-trace`, `baggage`) of the campaign's root run; empty when it has none."""
    started = campaign_started_at(campaign_id)
    if started is None:
        return {}
    baggage = {"campaign_id": str(campaign_id), **(metadata or {})}
    return {TRACE_HEADER: f"{started:%Y%m%dT%H%M%S%fZ}{campaign_id}",
            "baggage": f"langsmith-metadata={quote(json.dumps(baggage, separators=(',', ':')))},"
                       f"langsmith-project={quote(project)}"}


def _root(client: langsmith.Client, campaign_id: UUID, started: datetime, project: str,
          **fields: Any) -> run_trees.RunTree:
    return run_trees.RunTree(id=campaign_id, trace_id=campaign_id, start_time=started, name=ROOT_RUN_NAME,
                             run_type="chain", session_name=project, ls_client=client, **fields)


def start_campaign_run(client: langsmith.Client | None, campaign_id: UUID, *, project: str,
                       inputs: dict[str, Any], metadata: Mapping[str, str], flush_seconds: float) -> None:
    """Post the campaign's root run (best effort; flushed before the caller answers)."""
    started = campaign_started_at(campaign_id)
    if client is None or started is None:
        return
    try:
        _root(client, campaign_id, started, project, inputs=inputs,
              extra={"metadata": {"campaign_id": str(campaign_id), **metadata}}).post()
    except Exception:  # tracing must never fail the request it observes
        log.warning("could not start the trace of campaign %s", campaign_id, exc_info=True)
    flush(client, flush_seconds)


_RESTING_UNTIL: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
REST_SECONDS = 60.0
"""After a flush that could not drain (LangSmith down or slow), flushes are skipped this long."""


def flush(client: langsmith.Client, timeout: float) -> None:
    """Wait up to `timeout` s for queued runs to reach LangSmith, unless a recent flush could not drain.

    An unreachable LangSmith then costs one `timeout` per instance per `REST_SECONDS`, not one per step;
    runs queued meanwhile are still sent by the SDK's background thread when it can.
    """
    started = time.monotonic()
    if _RESTING_UNTIL.get(client, 0.0) > started:
        return
    try:
        client.flush(timeout=timeout)
        pending = client.tracing_queue.unfinished_tasks if client.tracing_queue is not None else 0
    except Exception:
        log.warning("could not flush traces", exc_info=True)
        pending = 1
    if pending or time.monotonic() - started >= 0.95 * timeout:
        log.warning("LangSmith did not take the traces within %.1fs; not waiting for it for %.0fs",
                    timeout, REST_SECONDS)
        _RESTING_UNTIL[client] = time.monotonic() + REST_SECONDS


def end_campaign_run(client: langsmith.Client | None, campaign_id: UUID, *, project: str, status: CampaignEnd,
                     reason: str | None = None) -> None:
    """End the campaign's root run with its final status (queued with the step's other runs)."""
    started = campaign_started_at(campaign_id)
    if client is None or started is None:
        return
    try:
        root = _root(client, campaign_id, started, project)
        root.end(outputs={"status": status}, error=reason if status != "completed" else None)
        root.patch(exclude_inputs=True)
    except Exception:  # tracing must never fail the step it observes
        log.warning("could not end the trace of campaign %s", campaign_id, exc_info=True)


@contextmanager
def step_trace(client: langsmith.Client | None, headers: Mapping[str, str] | None, *, project: str,
               metadata: Mapping[str, str], flush_seconds: float) -> Iterator[None]:
    """Trace a step's runs under `headers` (its campaign's root), flushing before the function answers.

    Cloud Run throttles CPU once a response is sent, so traces are flushed inside the request. With
    headers that do not parse the step is traced as a trace of its own.
    """
    if client is None:
        yield
        return
    parent: run_trees.RunTree | None = None
    if headers:
        try:
            carried: dict[str | bytes, str | bytes] = {key: value for key, value in headers.items()}
            parent = run_trees.RunTree.from_headers(carried, client=client)
        except Exception:
            log.warning("ignoring an unusable trace context %r", headers, exc_info=True)
    try:
        with langsmith.tracing_context(client=client, enabled=True, parent=parent, metadata=dict(metadata),
                                       project_name=project):
            yield
    finally:
        flush(client, flush_seconds)


class Span:
    """One child run: set what it produced before the block ends; a no-op when nothing is traced."""

    def __init__(self, run: run_trees.RunTree | None = None) -> None:
        self.run = run

    def record(self, produce: Callable[[], tuple[Mapping[str, Any], UsageMetadata | None]]) -> None:
        """Set the run's outputs (and an `llm` run's usage) from `produce`, only called when traced."""
        if self.run is None:
            return
        try:
            outputs, usage = produce()
            self.run.add_outputs(dict(outputs))
            if usage is not None:
                self.run.set(usage_metadata=usage)  # type: ignore[arg-type]
        except Exception:  # a trace detail must never fail the call it describes
            log.debug("could not record a run's outputs", exc_info=True)


NO_SPAN = Span()


def traced_stream(name: str, inputs: Mapping[str, Any], chunks: Iterator[T], *,
                  outputs: Callable[[list[T]], tuple[Mapping[str, Any], UsageMetadata | None]],
                  metadata: Mapping[str, Any] | None = None) -> Iterator[T]:
    """`chunks` as one `llm` run under the current run, ended when the stream is (`outputs` reads all chunks).

    Unlike `span`, the run does not become the current run while the caller consumes the stream, so
    whatever the caller does between chunks is not filed under the model call.
    """
    helpers = sys.modules.get("langsmith.run_helpers")
    if helpers is None or helpers.get_tracing_context()["enabled"] is not True:
        return chunks
    try:
        parent = helpers.get_current_run_tree()
        if parent is None:
            return chunks
        run = parent.create_child(name=name, run_type="llm", inputs=dict(inputs),
                                  extra={"metadata": dict(metadata or {})})
        run.post()
    except Exception:
        log.debug("could not open a streamed llm run", exc_info=True)
        return chunks
    return _follow(run, chunks, outputs)


def _follow(run: run_trees.RunTree, chunks: Iterator[T],
            outputs: Callable[[list[T]], tuple[Mapping[str, Any], UsageMetadata | None]]) -> Iterator[T]:
    seen: list[T] = []
    error: str | None = None
    try:
        for chunk in chunks:
            seen.append(chunk)
            yield chunk
    except BaseException as exc:
        error = repr(exc)
        raise
    finally:
        try:
            produced, usage = outputs(seen)
            if usage is not None:
                run.set(usage_metadata=usage)  # type: ignore[arg-type]
            run.end(outputs=dict(produced), error=error)
            run.patch()
        except Exception:  # a trace detail must never fail the call it describes
            log.debug("could not close a streamed llm run", exc_info=True)


@contextmanager
def span(name: str, run_type: RunType, inputs: Mapping[str, Any], *,
         metadata: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A child run of the current run, when a step (or chat turn) is being traced; else `NO_SPAN`.

    Only an explicit tracing context turns it on, so nothing reaches LangSmith through the SDK's
    environment-configured client (which would skip the personal-data anonymizer).
    """
    helpers = sys.modules.get("langsmith.run_helpers")
    if helpers is None or helpers.get_tracing_context()["enabled"] is not True:
        yield NO_SPAN
        return
    try:
        manager = langsmith.trace(name, run_type=run_type, inputs=dict(inputs), metadata=dict(metadata or {}))
        run = manager.__enter__()
    except Exception:
        log.debug("could not open a %s run", run_type, exc_info=True)
        yield NO_SPAN
        return
    failure: BaseException | None = None
    try:
        yield Span(run)
    except BaseException as exc:
        failure = exc
        raise
    finally:
        try:
            if failure is None:
                manager.__exit__(None, None, None)
            else:
                manager.__exit__(type(failure), failure, failure.__traceback__)
        except Exception:
            log.debug("could not close a %s run", run_type, exc_info=True)
