"""Bounded conversations: history compaction (rolling summary + recent window) and the chat turn graph.

- `compaction`: `compact(summary, unsummarized, model, policy)` folds old items of any history (chat
  messages, campaign events via `events_as_history`) into a cited `RollingSummary`;
  `render_context(summary, window)` is what a model is shown.
- `events`: the one event model a turn emits (`TurnEvent`) and the `EventSink` it goes to.
- `graph`: `build_chat_graph()` (uncompiled), `compile_chat_graph(create_checkpointer(pool))`,
  `run_turn(...)`, `resume_turn(...)` and `prune_history(...)`; see its docstring for why messages
  live in `conversation_messages` rather than in the checkpoint.

The names below are imported on first use (PEP 562), so importing `events` alone (the API's OpenAPI document
does) does not load the graph and its dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.conversations.compaction import (
        Compaction,
        CompactionPolicy,
        HistoryItem,
        RollingSummary,
        compact,
        events_as_history,
        needs_compaction,
        render_context,
    )
    from shared.conversations.graph import (
        ChatDeps,
        ChatOptions,
        ChatReply,
        ChatState,
        Orchestrator,
        TurnAnswer,
        TurnInput,
        TurnResult,
        TurnUnfinished,
        build_chat_graph,
        chat_config,
        compile_chat_graph,
        prune_history,
        resume_turn,
        run_turn,
    )

_HOMES = {
    **dict.fromkeys(("Compaction", "CompactionPolicy", "HistoryItem", "RollingSummary", "compact",
                     "events_as_history", "needs_compaction", "render_context"), "compaction"),
    **dict.fromkeys(("ChatDeps", "ChatOptions", "ChatReply", "ChatState", "Orchestrator", "TurnAnswer", "TurnInput",
                     "TurnResult", "TurnUnfinished", "build_chat_graph", "chat_config", "compile_chat_graph",
                     "prune_history", "resume_turn", "run_turn"), "graph"),
}
"""Where each public name lives."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)

__all__ = [
    "ChatDeps",
    "ChatOptions",
    "ChatReply",
    "ChatState",
    "Compaction",
    "CompactionPolicy",
    "HistoryItem",
    "Orchestrator",
    "RollingSummary",
    "TurnAnswer",
    "TurnInput",
    "TurnResult",
    "TurnUnfinished",
    "build_chat_graph",
    "chat_config",
    "compact",
    "compile_chat_graph",
    "events_as_history",
    "needs_compaction",
    "prune_history",
    "render_context",
    "resume_turn",
    "run_turn",
]
