"""One validated tool belt: every tool declared once, exposed to Gemini, run through one execution layer.

`standard_belt(ToolDeps(...))` builds the six tools (web_search, knowledge_search, knowledge_fetch,
fetch_canon, content_execution, validate_content); `ToolBelt.run` executes one call and returns a
`ToolRun` (output or `ToolError`, attempts, latency, cost); `ToolAgent` lets Gemini call them.
"""

from shared.tools.agent import AgentResult, ToolAgent
from shared.tools.belt import (
    Costed,
    RetryPolicy,
    Tool,
    ToolBelt,
    ToolContext,
    ToolCost,
    ToolError,
    ToolErrorCode,
    ToolRun,
)
from shared.tools.canon import Canon, CanonEntry, ContentType, load_canon
from shared.tools.catalog import ContentBrief, ToolDeps, standard_belt, standard_tools
from shared.tools.knowledge import PgKnowledgeFetch
from shared.tools.ports import KnowledgeDocument, KnowledgeFetch
from shared.tools.validation import ContentIssue, validate_channel_content

__all__ = (
    "AgentResult",
    "Canon",
    "CanonEntry",
    "ContentBrief",
    "ContentIssue",
    "ContentType",
    "Costed",
    "KnowledgeDocument",
    "KnowledgeFetch",
    "PgKnowledgeFetch",
    "RetryPolicy",
    "Tool",
    "ToolAgent",
    "ToolBelt",
    "ToolContext",
    "ToolCost",
    "ToolDeps",
    "ToolError",
    "ToolErrorCode",
    "ToolRun",
    "load_canon",
    "standard_belt",
    "standard_tools",
    "validate_channel_content",
)
