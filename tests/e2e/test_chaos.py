"""Chaos: 30 campaigns while function processes and the whole stack are SIGKILLed at random instants.

The same code as `make chaos` (infra/chaos.py), with fewer kills so that `make test` stays lean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.chaos import ChaosConfig, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_campaigns_complete_exactly_once_through_random_kills(tmp_path: Path) -> None:
    report = run(ChaosConfig(campaigns=30, min_kills=30, channels=("email",), kill_interval=(0.5, 1.5),
                             stack_kill_every=10, deadline_seconds=420), tmp_path)
    summary = "\n".join(report.lines()) + f"\n{report.details}"
    assert report.campaigns >= 30, summary
    assert report.kills >= 30 and report.stack_kills >= 2, summary
    assert report.stuck == 0, summary
    assert report.unpaid_completions == 0, summary
    assert report.duplicate_side_effects == 0, summary
    assert report.checkpoint_forks == 0, summary
    assert report.details["completed_without_exactly_one_order"] == 0, summary
    assert report.heal_p95 <= 90, summary
