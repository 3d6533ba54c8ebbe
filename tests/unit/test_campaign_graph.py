"""The campaign graph as each step function builds it: its own nodes imported, the same shape everywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest
from langgraph.graph import StateGraph

from infra.local.stack import REPO_ROOT
from shared.campaigns.graph import NODE_OWNERS, STEP_FUNCTIONS, build_campaign_graph


def _shape(graph: StateGraph) -> dict[str, object]:
    return {"nodes": {name: spec.input_schema for name, spec in graph.nodes.items()},
            "edges": sorted(graph.edges), "branches": {k: sorted(v) for k, v in graph.branches.items()},
            "channels": sorted(graph.compile().channels)}


@pytest.mark.parametrize("function", STEP_FUNCTIONS)
def test_every_function_builds_the_graph_every_other_function_builds(function: str) -> None:
    """A checkpoint one function writes is read by the next, so nodes, edges and channels never differ."""
    assert _shape(build_campaign_graph(function)) == _shape(build_campaign_graph())


def test_a_function_imports_its_own_nodes_and_no_others() -> None:
    """Another function's node module (and what it imports) is never loaded by this function's cold start."""
    code = ("import sys; from shared.campaigns.graph import STEP_FUNCTIONS, build_campaign_graph\n"
            "for function in STEP_FUNCTIONS:\n"
            "    before = set(sys.modules); build_campaign_graph(function)\n"
            "    new = set(sys.modules) - before\n"
            "    print(function, *sorted(m for m in new if m.startswith('shared.campaigns.nodes.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.splitlines() == [f"{f} shared.campaigns.nodes.{f}" for f in STEP_FUNCTIONS]


def test_another_functions_node_refuses_to_run() -> None:
    """The engine stops before a foreign node; were it ever run, it fails instead of doing nothing."""
    graph = build_campaign_graph("planner")
    foreign = [name for name, owner in NODE_OWNERS.items() if owner != "planner"]
    for name in foreign:
        with pytest.raises(RuntimeError, match=f"belongs to the {NODE_OWNERS[name]!r} function"):
            graph.nodes[name].runnable.invoke({})


def test_an_unknown_function_is_named() -> None:
    with pytest.raises(ValueError, match="'plannr'"):
        build_campaign_graph("plannr")
