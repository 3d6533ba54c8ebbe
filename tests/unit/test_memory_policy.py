"""The rules of memory without storage: fact identity, retention, route confidence, variant scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.errors import ConfigurationError
from shared.memory.models import FactSource, RouteQuery, SelectionQuery, TaskMatch
from shared.memory.policy import (
    CALIBRATIONS,
    DEFAULT_RETENTION,
    ModelCalibration,
    Retention,
    SelectionPrior,
    calibration_for,
    choose_variant,
    decide_route,
    fact_hash,
    is_duplicate,
    match_score,
    measure_calibration,
    new_wording_wins,
    normalize_fact,
    route_confidence,
    select_variant,
    task_match,
    variant_stats,
)

WS = "7b0c1c52-0d0e-4a7e-9d7e-3f8a1d2b4c5e"
AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CAL = ModelCalibration(unrelated=0.85, equivalent=0.97, duplicate=0.92)


# ------------------------------------------------------------------------------------------------ facts


@pytest.mark.parametrize("variant", [
    "Our teas come from Darjeeling.",
    "  our TEAS   come from\n darjeeling ",
    "\u201cOur teas come from Darjeeling!\u201d",
    "Ｏｕｒ teas come from Darjeeling",
])
def test_wordings_differing_only_in_case_space_quotes_or_width_are_one_fact(variant: str) -> None:
    assert normalize_fact(variant) == "our teas come from darjeeling"
    assert fact_hash(variant) == fact_hash("Our teas come from Darjeeling")


def test_different_facts_and_inner_punctuation_keep_their_own_hash() -> None:
    assert fact_hash("Prices include GST") != fact_hash("Prices exclude GST")
    assert fact_hash("Free shipping over ₹999") != fact_hash("Free shipping over ₹1,999")
    assert normalize_fact("हमारी चाय दार्जिलिंग से आती है।") == "हमारी चाय दार्जिलिंग से आती है"


def test_a_fact_is_a_duplicate_from_the_models_threshold_up() -> None:
    assert is_duplicate(0.92, CAL) and is_duplicate(0.99, CAL)
    assert not is_duplicate(0.919, CAL)


@pytest.mark.parametrize(("new", "kept", "wins"), [
    ("edit", "artifact", True), ("decision", "artifact", True), ("artifact", "artifact", True),
    ("edit", "edit", True), ("manual", "edit", True), ("artifact", "decision", False), ("decision", "edit", False),
    ("artifact", "manual", False),
])
def test_a_merge_keeps_the_newer_wording_unless_its_source_is_weaker(new: str, kept: str, wins: bool) -> None:
    assert new_wording_wins(new, kept) is wins  # type: ignore[arg-type]


def test_fact_sources_reject_unknown_kinds() -> None:
    with pytest.raises(ValidationError, match="artifact"):
        FactSource(kind="rumour")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- retention


def test_task_history_is_kept_30_days_critiques_7_and_the_rest_until_deleted() -> None:
    assert DEFAULT_RETENTION.expires_at("task", AT) == AT + timedelta(days=30)
    assert DEFAULT_RETENTION.expires_at("critique", AT) == AT + timedelta(days=7)
    assert DEFAULT_RETENTION.expires_at("outcome", AT) is None
    assert DEFAULT_RETENTION.expires_at("interaction", AT) is None


def test_retention_is_configurable_and_needs_an_aware_time() -> None:
    assert Retention(interaction=timedelta(days=90)).expires_at("interaction", AT) == AT + timedelta(days=90)
    with pytest.raises(ValueError, match="no timezone"):
        DEFAULT_RETENTION.expires_at("task", datetime(2026, 11, 23, 9, 0))


# ------------------------------------------------------------------------------------------ calibration


def test_match_maps_unrelated_to_zero_and_equivalent_to_one_linearly() -> None:
    assert match_score(0.80, CAL) == 0.0
    assert match_score(0.85, CAL) == 0.0
    assert match_score(0.91, CAL) == pytest.approx(0.5)
    assert match_score(0.97, CAL) == 1.0
    assert match_score(1.0, CAL) == 1.0


def test_confidence_is_match_times_proven_quality_and_zero_for_a_failure() -> None:
    assert route_confidence(1.0, success=True, quality=0.9) == pytest.approx(0.9)
    assert route_confidence(0.5, success=True, quality=1.0) == pytest.approx(0.5)
    assert route_confidence(1.0, success=False, quality=1.0) == 0.0


def test_calibrations_are_known_for_the_configured_models_and_refused_for_others() -> None:
    assert calibration_for("multilingual-e5-small") == CALIBRATIONS["multilingual-e5-small"]
    assert calibration_for("gemini-embedding-001").unrelated < calibration_for("gemini-embedding-001").equivalent
    with pytest.raises(ConfigurationError, match="'text-embedding-3-large'.*ModelCalibration"):
        calibration_for("text-embedding-3-large")
    assert calibration_for("text-embedding-3-large", {"text-embedding-3-large": CAL}) == CAL
    with pytest.raises(ValidationError, match="must be below"):
        ModelCalibration(unrelated=0.9, equivalent=0.8, duplicate=0.85)


def test_a_calibration_is_measured_from_labelled_pairs() -> None:
    measured = measure_calibration(paraphrases=[0.93, 0.95, 0.97, 0.99], unrelated=[0.78, 0.80, 0.82, 0.84, 0.86],
                                   related=[0.82, 0.86, 0.90])
    assert measured.unrelated == pytest.approx(0.852)
    assert measured.equivalent == pytest.approx(0.96)
    assert measured.duplicate == pytest.approx((0.892 + 0.945) / 2)
    with pytest.raises(ValueError, match="at least one"):
        measure_calibration([], [0.8])


# ---------------------------------------------------------------------------------------------- routing


def _match(task_id: int, similarity: float, *, success: bool = True, quality: float = 0.9,
           age_days: int = 0) -> TaskMatch:
    return task_match(task_id=task_id, description=f"task {task_id}", steps=["research", "strategy", "content"],
                      plan={"channels": ["email"]}, success=success, quality=quality, similarity=similarity,
                      created_at=AT - timedelta(days=age_days), calibration=CAL)


def test_a_near_identical_proven_task_is_reused_with_its_steps_and_plan() -> None:
    decision = decide_route([_match(1, 0.985, quality=0.9), _match(2, 0.80)])
    assert decision.action == "reuse"
    assert decision.steps == ["research", "strategy", "content"] and decision.plan == {"channels": ["email"]}
    assert decision.confidence == pytest.approx(0.9) and decision.match is not None and decision.match.task_id == 1
    assert "confidence 0.90 > 0.8" in decision.reason


def test_related_but_different_unproven_and_failed_tasks_are_planned() -> None:
    related = decide_route([_match(1, 0.93)])
    assert (related.action, related.steps) == ("plan", [])
    assert related.match is not None and related.confidence == pytest.approx(0.9 * 2 / 3)
    assert decide_route([_match(1, 0.99, quality=0.8)]).action == "plan"
    failed = decide_route([_match(1, 0.99, success=False)])
    assert failed.action == "plan" and "failed" in failed.reason
    assert decide_route([]).reason == "no similar past task of this type"


def test_the_most_confident_match_wins_over_the_most_similar() -> None:
    decision = decide_route([_match(1, 0.99, success=False), _match(2, 0.975, quality=0.95)])
    assert decision.action == "reuse" and decision.match is not None and decision.match.task_id == 2
    assert [c.task_id for c in decision.candidates] == [2, 1]


def test_route_queries_are_validated_with_messages_that_name_the_value() -> None:
    with pytest.raises(ValidationError, match="'acme' is not a UUID"):
        RouteQuery(workspace_id="acme", task_type="campaign", description="x")
    with pytest.raises(ValidationError, match="'email campaign' is not a valid name"):
        RouteQuery(workspace_id=WS, task_type="email campaign", description="x")


# -------------------------------------------------------------------------------------------- selection

PRIOR = SelectionPrior()


def test_variant_scores_are_smoothed_success_rate_times_smoothed_quality() -> None:
    untried = variant_stats("campaign", "copywriter", "flash", 0, 0, 0.0, PRIOR)
    assert (untried.success_rate, untried.mean_quality, untried.score) == (0.5, 0.5, 0.25)
    proven = variant_stats("campaign", "copywriter", "pro", 8, 8, 7.2, PRIOR)
    assert proven.success_rate == pytest.approx(9 / 10)
    assert proven.mean_quality == pytest.approx(8.2 / 10)
    assert proven.score == pytest.approx(0.9 * 0.82)


def _pick(counts: dict[str, tuple[int, int, float]], variants: list[str] | None = None,
          default: str = "flash") -> str:
    query = SelectionQuery(workspace_id=WS, task_type="campaign", specialist="copywriter",
                           variants=variants or ["flash", "pro", "lite"], default=default)
    return select_variant(query, counts, PRIOR).variant


def test_without_history_the_default_is_picked() -> None:
    query = SelectionQuery(workspace_id=WS, task_type="campaign", specialist="copywriter",
                           variants=["pro", "flash"], default="flash")
    choice = select_variant(query, {"other": (5, 5, 5.0)}, PRIOR)
    assert (choice.variant, choice.reason) == ("flash", "no_history")
    assert set(choice.scores) == {"pro", "flash"}


def test_the_better_record_wins_and_ties_go_to_the_default() -> None:
    assert _pick({"flash": (5, 3, 3.0), "pro": (5, 5, 4.5)}) == "pro"
    assert _pick({"flash": (4, 4, 3.6), "pro": (4, 4, 3.6)}) == "flash"
    assert _pick({"pro": (4, 4, 3.6), "lite": (4, 4, 3.6)}, default="flash") == "pro"


def test_a_long_good_record_outweighs_one_lucky_run() -> None:
    assert _pick({"flash": (20, 19, 17.0), "pro": (1, 1, 1.0)}) == "flash"
    assert _pick({"pro": (2, 2, 1.9)}) == "pro"


def test_a_variant_doing_worse_than_the_prior_gives_way_to_an_untried_one() -> None:
    assert _pick({"flash": (4, 1, 1.2)}) == "pro"


def test_choose_variant_orders_the_default_first() -> None:
    stats = {v: variant_stats("t", "s", v, 0, 0, 0.0, PRIOR) for v in ("a", "b")}
    assert choose_variant(["a", "b"], "b", stats) == ("b", "no_history")


def test_selection_queries_need_the_default_among_the_variants() -> None:
    with pytest.raises(ValidationError, match="default variant 'pro' is not among variants"):
        SelectionQuery(workspace_id=WS, task_type="campaign", specialist="copywriter", variants=["flash"],
                       default="pro")
    query = SelectionQuery(workspace_id=WS, task_type="campaign", specialist="copywriter",
                           variants=["flash", "pro", "flash"], default="pro")
    assert query.variants == ["flash", "pro"]
