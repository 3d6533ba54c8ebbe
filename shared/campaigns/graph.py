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
    "research_web": "research",
    "research_knowledge": "research",
    "summarize": "research",
    "strategy": "planner",
    "approve_strategy": "planner",
    "content": "content",
    "qa_gate": "qa",
    "qa_review": "qa",
    "await_payment": "payments",
    "execute": "execution",
}
"""Node → the step function that runs it. A step runs until the next node belongs to another function."""

STEP_FUNCTIONS: tuple[str, ...] = tuple(dict.fromkeys(NODE_OWNERS.values()))


def build_campaign_graph() -> StateGraph:
    """Plan → research (web ∥ knowledge) → summarize → strategy → approval → content ⇄ QA → payment → execute."""
    graph = StateGraph(CampaignState, context_schema=Deps)
    graph.add_node("plan", nodes.plan)
    graph.add_node("research_web", nodes.research_web)
    graph.add_node("research_knowledge", nodes.research_knowledge)
    graph.add_node("summarize", nodes.summarize)
    graph.add_node("strategy", nodes.strategy)
    graph.add_node("approve_strategy", nodes.approve_strategy)
    graph.add_node("content", nodes.content)
    graph.add_node("qa_gate", nodes.qa_gate)
    graph.add_node("qa_review", nodes.qa_review)
    graph.add_node("await_payment", nodes.await_payment)
    graph.add_node("execute", nodes.execute)

    graph.add_edge(START, "plan")
    graph.add_edge("plan", "research_web")
    graph.add_edge("plan", "research_knowledge")
    graph.add_edge(["research_web", "research_knowledge"], "summarize")
    graph.add_edge("summarize", "strategy")
    graph.add_edge("strategy", "approve_strategy")
    graph.add_conditional_edges("approve_strategy", nodes.after_approval, ["content", "plan"])
    graph.add_edge("content", "qa_gate")
    graph.add_conditional_edges("qa_gate", nodes.after_qa, ["await_payment", "content", "qa_review"])
    graph.add_conditional_edges("qa_review", nodes.after_review, ["await_payment", "content"])
    graph.add_edge("await_payment", "execute")
    graph.add_edge("execute", END)
    return graph
