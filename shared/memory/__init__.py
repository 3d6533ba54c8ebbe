"""A workspace's memory: semantic brand facts, episodes, memory-aware routing and adaptive specialist selection.

The campaign graph sees the Protocols of `shared.memory.ports`; `build_memory` gives their Postgres
implementations, `shared.memory.fakes.fake_memory` in-memory ones for unit tests, and
`shared.memory.policy` documents (and implements) the rules both apply.
"""

from shared.memory.extract import ExtractedFacts, FactExtractor
from shared.memory.models import (
    Episode,
    EpisodeKind,
    Fact,
    FactSource,
    LearnResult,
    PurgeReport,
    RouteDecision,
    SpecialistChoice,
    TaskMatch,
    VariantStats,
)
from shared.memory.pg import PgMemory, build_memory, reembed_memory
from shared.memory.policy import ModelCalibration, Retention, SelectionPrior
from shared.memory.ports import EpisodicMemory, SemanticMemory, SpecialistSelector, TaskRouter

__all__ = [
    "Episode",
    "EpisodeKind",
    "EpisodicMemory",
    "ExtractedFacts",
    "Fact",
    "FactExtractor",
    "FactSource",
    "LearnResult",
    "ModelCalibration",
    "PgMemory",
    "PurgeReport",
    "Retention",
    "RouteDecision",
    "SelectionPrior",
    "SemanticMemory",
    "SpecialistChoice",
    "SpecialistSelector",
    "TaskMatch",
    "TaskRouter",
    "VariantStats",
    "build_memory",
    "reembed_memory",
]
