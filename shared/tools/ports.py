"""Ports the tool belt needs beyond `shared.ports`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class KnowledgeDocument:
    """One document of a workspace's knowledge base, whole."""

    document_id: str
    title: str
    content: str
    source: str = "text"
    tags: tuple[str, ...] = field(default_factory=tuple)


class KnowledgeFetch(Protocol):
    """Reads whole documents of a workspace's knowledge base (search returns only chunks)."""

    def fetch(self, workspace_id: str, document_id: str) -> KnowledgeDocument | None:
        """The document, or None when it does not exist in `workspace_id`."""
        ...
