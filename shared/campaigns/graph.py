"""The campaign graph and which function owns each node.

`build_campaign_graph()` returns an uncompiled graph: each function compiles it with its own
checkpointer, so building it opens no connection.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from shared.campaigns import nodes
from shared.campaigns.state import CampaignState
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
"""Node → the step function that runs it. A step runs until the next node belongs to another function."""

STEP_FUNCTIONS: tuple[str, ...] = tuple(dict.fromkeys(NODE_OWNERS.values()))


def build_campaign_graph() -> StateGraph:
    """Plan → specialists (concurrent) ⇄ review → summarize → strategy → approval → brief (tier 1)
    → content (tier 2) ⇄ QA → payment → execute."""
    graph = StateGraph(CampaignState, context_schema=Deps)
    graph.add_node("plan", nodes.plan)
    graph.add_node("specialist", nodes.specialist)
    graph.add_node("review", nodes.review)
    graph.add_node("summarize", nodes.summarize)
    graph.add_node("strategy", nodes.strategy)
    graph.add_node("approve_strategy", nodes.approve_strategy)
    graph.add_node("brief", nodes.brief)
    graph.add_node("content", nodes.content)
    graph.add_node("qa_gate", nodes.qa_gate)
    graph.add_node("qa_review", nodes.qa_review)
    graph.add_node("await_payment", nodes.await_payment)
    graph.add_node("execute", nodes.execute)

    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", nodes.dispatch_specialists, ["specialist", "summarize"])
    graph.add_edge("specialist", "review")
    graph.add_conditional_edges("review", nodes.dispatch_specialists, ["specialist", "summarize"])
    graph.add_edge("summarize", "strategy")
    graph.add_edge("strategy", "approve_strategy")
    graph.add_conditional_edges("approve_strategy", nodes.after_approval, ["brief", "plan"])
    graph.add_edge("brief", "content")
    graph.add_edge("content", "qa_gate")
    graph.add_conditional_edges("qa_gate", nodes.after_qa, ["await_payment", "content", "qa_review"])
    graph.add_conditional_edges("qa_review", nodes.after_review, ["await_payment", "content"])
    graph.add_edge("await_payment", "execute")
    graph.add_edge("execute", END)
    return graph
