"""The campaign graph and which function owns each node.

`build_campaign_graph()` returns an uncompiled graph: each function compiles it with its own
checkpointer, so building it opens no connection.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from langgraph.graph import END, START, StateGraph

from shared.campaigns import nodes, routing
from shared.campaigns.decisions import budgeted
from shared.campaigns.state import CampaignState, SpecialistTask
from shared.deps import Deps

NODE_OWNERS: dict[str, str] = {
    "plan": "planner",
    "specialist": "research",
    "review": "research",
    "summarize": "research",
    "strategy": "planner",
    "approve_strategy": "planner",
    "brief": "planner",
    "content": "content",
    "qa_gate": "qa",
    "qa_review": "qa",
    "await_payment": "payments",
    "execute": "execution",
}
"""Node → the step function that runs it. A step runs until the next node belongs to another function.

A function's nodes are the functions of the same name in `shared.campaigns.nodes.<function>`."""

STEP_FUNCTIONS: tuple[str, ...] = tuple(dict.fromkeys(NODE_OWNERS.values()))

_NODE_INPUTS: dict[str, type[Any]] = {"specialist": SpecialistTask}
"""Nodes whose input is not the campaign state (a specialist receives its `Send` payload)."""


def build_campaign_graph(function: str | None = None) -> StateGraph[CampaignState, Deps, CampaignState, CampaignState]:
    """Plan → specialists (concurrent) ⇄ review → summarize → strategy → approval → brief (tier 1)
    → content (tier 2) ⇄ QA → payment → execute.

    Args:
        function: The step function the graph runs in. Only that function's nodes are imported;
            every other node is a placeholder that refuses to run (the engine always stops before
            another function's node). None imports every node, for one process that runs them all.
    """
    if function is not None and function not in STEP_FUNCTIONS:
        raise ValueError(f"Unknown step function {function!r}; the graph's functions are {list(STEP_FUNCTIONS)}.")
    owned = {owner for owner in STEP_FUNCTIONS if function in (None, owner)}
    modules = {owner: importlib.import_module(f"{nodes.__name__}.{owner}") for owner in owned}
    graph = StateGraph(CampaignState, context_schema=Deps)
    for name, owner in NODE_OWNERS.items():
        action = budgeted(getattr(modules[owner], name)) if owner in owned else _foreign(name, owner)
        graph.add_node(name, action, input_schema=_NODE_INPUTS.get(name, CampaignState))

    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", routing.dispatch_specialists, ["specialist", "summarize"])
    graph.add_edge("specialist", "review")
    graph.add_conditional_edges("review", routing.dispatch_specialists, ["specialist", "summarize"])
    graph.add_edge("summarize", "strategy")
    graph.add_edge("strategy", "approve_strategy")
    graph.add_conditional_edges("approve_strategy", routing.after_approval, ["brief", "plan"])
    graph.add_edge("brief", "content")
    graph.add_edge("content", "qa_gate")
    graph.add_conditional_edges("qa_gate", routing.after_qa, ["await_payment", "content", "qa_review"])
    graph.add_conditional_edges("qa_review", routing.after_review, ["await_payment", "content"])
    graph.add_edge("await_payment", "execute")
    graph.add_edge("execute", END)
    return graph


class _Action(Protocol):
    """A node's action as LangGraph calls it: with the node's input as `state`."""

    def __call__(self, state: Any) -> dict[str, Any]: ...


def _foreign(name: str, owner: str) -> _Action:
    """A stand-in for another function's node, so this function never imports what that node needs."""

    def foreign_node(state: Any) -> dict[str, Any]:
        raise RuntimeError(f"Node {name!r} belongs to the {owner!r} function and cannot run here; "
                           "a step stops before any node another function owns.")

    foreign_node.__name__ = name
    return foreign_node
