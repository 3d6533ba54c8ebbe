"""The pure parts of one trace per campaign: ids, trace context, usage and cost, the message field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from langsmith.run_trees import RunTree
from pydantic import ValidationError

from shared.messages import StepMessage
from shared.ports import Usage
from shared.tracing import NO_SPAN, campaign_started_at, campaign_trace, llm_usage, new_campaign_id, span


def test_a_campaign_id_is_a_uuid7_whose_trace_context_names_it_as_the_root() -> None:
    before = datetime.now(UTC)
    campaign_id = new_campaign_id()
    started = campaign_started_at(campaign_id)
    assert campaign_id.version == 7 and started is not None
    assert abs((started - before).total_seconds()) < 1 and started.microsecond % 1000 == 0

    headers = campaign_trace(campaign_id, project="muse", metadata={"workspace_id": "w1"})
    parent = RunTree.from_headers(headers)
    assert parent is not None
    assert parent.id == campaign_id and parent.trace_id == campaign_id and parent.parent_run_id is None
    assert parent.session_name == "muse"
    assert parent.metadata == {"campaign_id": str(campaign_id), "workspace_id": "w1"}
    child = parent.create_child(name="campaign.planner", run_type="chain")
    assert child.dotted_order.startswith(headers["langsmith-trace"] + ".")


def test_an_older_uuid4_campaign_has_no_root_to_join() -> None:
    import uuid

    assert campaign_trace(uuid.uuid4(), project="muse") == {}


def test_llm_usage_counts_thinking_as_output_and_prices_it() -> None:
    usage = llm_usage(Usage(model="gemini-2.5-flash", prompt_tokens=1000, cached_tokens=400, output_tokens=200,
                            thinking_tokens=100))
    assert usage["input_tokens"] == 1000 and usage["output_tokens"] == 300 and usage["total_tokens"] == 1300
    assert usage["input_token_details"] == {"cache_read": 400}
    assert usage["output_token_details"] == {"reasoning": 100}
    assert usage["input_cost"] == pytest.approx((600 * 0.30 + 400 * 0.03) / 1e6)
    assert usage["output_cost"] == pytest.approx(300 * 2.50 / 1e6)
    assert usage["total_cost"] == pytest.approx(usage["input_cost"] + usage["output_cost"])
    assert "total_cost" not in llm_usage(Usage(model="a-model-with-no-price", prompt_tokens=5))


def test_a_step_message_carries_only_the_trace_headers() -> None:
    trace = {"langsmith-trace": "20261201T000000000000Zabc", "baggage": "langsmith-project=muse"}
    message = StepMessage(kind="continue", campaign_id=new_campaign_id(), trace=trace)
    assert StepMessage.model_validate(message.model_dump(mode="json")).trace == trace
    assert StepMessage.model_validate({"kind": "continue", "campaign_id": str(new_campaign_id())}).trace is None
    with pytest.raises(ValidationError, match="langsmith-trace"):
        StepMessage(kind="continue", campaign_id=new_campaign_id(), trace={"cookie": "x"})
    assert message.dedup_id() == message.model_copy(update={"trace": None}).dedup_id()


def test_a_span_outside_a_traced_step_sends_nothing() -> None:
    with span("gemini", "llm", {"prompt": "hi"}) as run:
        run.record(lambda: (_ for _ in ()).throw(AssertionError("not called when untraced")))
    assert run is NO_SPAN
