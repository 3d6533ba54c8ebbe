"""`infra/functions.toml` is the one roster: it matches `functions/`, and every reader takes it from there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from infra.local.processes import FUNCTIONS
from infra.roster import REPO_ROOT, load_roster


def _function_directories() -> set[str]:
    return {path.parent.name for path in (REPO_ROOT / "functions").glob("*/main.py")}


def _entry_points(source: Path) -> set[str]:
    """Top-level functions decorated by functions-framework (`@functions_framework.http` or `.cloud_event`)."""
    tree = ast.parse(source.read_text(), filename=str(source))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any("functions_framework" in ast.unparse(d) for d in node.decorator_list)}


def test_roster_matches_the_function_directories() -> None:
    assert set(load_roster()) == _function_directories()


@pytest.mark.parametrize("name", sorted(load_roster()))
def test_each_entry_point_exists(name: str) -> None:
    spec = load_roster()[name]
    assert (REPO_ROOT / spec.source).is_file()
    assert name in _entry_points(REPO_ROOT / spec.source), f"{spec.source} has no functions-framework `{name}`"


def test_process_runner_and_local_stack_read_the_roster() -> None:
    roster = load_roster()
    assert FUNCTIONS == tuple(roster)
    assert roster["phonepe_webhook"].local_path == "/webhooks/phonepe" and roster["planner"].local_path == "/planner"


def test_a_new_entry_needs_only_its_heading(tmp_path: Path) -> None:
    text = (REPO_ROOT / "infra" / "functions.toml").read_text() + "\n[functions.newcomer]\ntimeout_seconds = 120\n"
    (tmp_path / "functions.toml").write_text(text)
    newcomer = load_roster(tmp_path / "functions.toml")["newcomer"]
    defaults = load_roster()["payments"]
    assert newcomer.source == "functions/newcomer/main.py" and newcomer.local_path == "/newcomer"
    assert newcomer.timeout_seconds == 120
    assert (newcomer.cpu, newcomer.memory, newcomer.secrets) == (defaults.cpu, defaults.memory, defaults.secrets)


@pytest.mark.parametrize("entry", ["[functions.bad]\nmemroy = '1Gi'\n", "[functions.Bad-Name]\n",
                                   "[functions.bad]\nsecrets = 'DATABASE_URL'\n",
                                   "[functions.bad]\nlocal_path = '/api'\n"])
def test_malformed_entries_are_refused(tmp_path: Path, entry: str) -> None:
    text = (REPO_ROOT / "infra" / "functions.toml").read_text() + "\n" + entry
    (tmp_path / "functions.toml").write_text(text)
    with pytest.raises(ValueError):
        load_roster(tmp_path / "functions.toml")
