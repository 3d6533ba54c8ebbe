"""The six tools of Muse's agents, each declared once over the ports.

`standard_belt(ToolDeps(...))` returns the belt; nothing here talks to a vendor directly, so the same
tools run on Tavily/pgvector/Gemini in the cloud, on the emulators locally and on fakes in tests.

Copy has a language: content_execution writes in the brief's `language` and its script, told in the words the
campaign writers are told (`shared.writing.prompting.language_instruction`), and validate_content checks copy
in the language it names (script and language identity, platform limits as each platform counts them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.channels import CHANNEL_SCHEMAS, Channel
from shared.errors import NotFound
from shared.integrations.tavily import search_costed
from shared.models.routing import tier_for
from shared.ports import Finding, KnowledgeSearch, StructuredModel, Usage, WebSearch
from shared.qa.gate import check as qa_check
from shared.qa.report import Layer
from shared.safety.untrusted import quote_lines, with_rule
from shared.tools.belt import Costed, RetryPolicy, Tool, ToolBelt, ToolContext, ToolCost, ToolRun
from shared.tools.canon import Canon, CanonEntry, ContentType, load_canon
from shared.tools.ports import KnowledgeFetch
from shared.tools.validation import ContentIssue, validate_channel_content
from shared.writing.prompting import language_instruction
from shared.writing.specs import LANGUAGES, Language

TAVILY_CREDITS_PER_BASIC_SEARCH = 1.0
FINDING_CHARS = 1500

CONTENT_EXECUTOR = with_rule("""You are Muse's content executor. Write copy for exactly one channel from the brief
alone.
Follow the canon: its framework steps in order, every field's guidance and limits, and its compliance rules.
Use only facts, numbers, prices and claims that appear in the brief; never invent proof.
Include every text listed under must_include verbatim; never use anything listed under avoid.
Write in the language and script the prompt's `Write in:` line names.
Answer with JSON matching the response schema and nothing else.""")
LANGUAGE_FIELD = ("The language to write (or check) the copy in, and so its script: one of "
                  f"{', '.join(LANGUAGES)} (e.g. 'ta' is Tamil in Tamil script, 'hi' Hindi in Devanagari). "
                  "Set it whenever the user asks for copy in a language; omitted, the brand kit's primary language "
                  "is used, else English.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebSearchInput(_Strict):
    """Search the public web."""

    query: str = Field(min_length=2, max_length=400, description="What to search for, in plain words.")
    max_results: int = Field(5, ge=1, le=10, description="How many results to return.")


class KnowledgeSearchInput(_Strict):
    """Search the workspace's own knowledge base."""

    query: str = Field(min_length=2, max_length=400, description="What to look for in the workspace's documents.")
    k: int = Field(5, ge=1, le=10, description="How many chunks to return.")


class FindingOut(BaseModel):
    """One search result with the id to cite it by."""

    source_id: str
    title: str
    content: str
    url: str | None = None
    score: float = 0.0

    @classmethod
    def of(cls, finding: Finding) -> FindingOut:
        """A finding, its content cut to what a prompt can afford."""
        return cls(source_id=finding.source_id, title=finding.title, content=finding.content[:FINDING_CHARS],
                   url=finding.url, score=finding.score)


class SearchOutput(BaseModel):
    """Results, best first."""

    results: list[FindingOut]


class KnowledgeFetchInput(_Strict):
    """Read a whole knowledge-base document found by knowledge_search."""

    source_id: str = Field(pattern=r"^kb:[0-9a-fA-F-]{36}(:\d+)?$",
                           description="A 'kb:' source id returned by knowledge_search.")
    max_chars: int = Field(6000, ge=500, le=20_000, description="Longest content to return.")


class KnowledgeFetchOutput(BaseModel):
    """A knowledge-base document."""

    source_id: str
    document_id: str
    title: str
    content: str
    truncated: bool
    tags: list[str] = Field(default_factory=list)


class FetchCanonInput(_Strict):
    """Get the canon (framework, fields and limits, template, compliance rules) of a content type."""

    content_type: ContentType


class ContentBrief(_Strict):
    """Everything the content executor may use: it sees nothing else."""

    objective: str = Field(min_length=1, max_length=1000)
    audience: str = Field(min_length=1, max_length=600)
    key_messages: list[str] = Field(min_length=1, max_length=5)
    tone: list[str] = Field(default_factory=list, max_length=5)
    call_to_action: str | None = Field(default=None, max_length=80)
    must_include: list[str] = Field(default_factory=list, max_length=6,
                                    description="Texts to include verbatim, e.g. required disclaimers.")
    avoid: list[str] = Field(default_factory=list, max_length=20, description="Terms and claims never to use.")
    facts: list[str] = Field(default_factory=list, max_length=12,
                             description="Facts, numbers and offers the copy may state, with their source.")
    language: Language | None = Field(default=None, description=LANGUAGE_FIELD)


class ContentExecutionInput(_Strict):
    """Write one channel's copy from a complete brief, in the brief's language."""

    channel: Channel
    brief: ContentBrief


class ContentExecutionOutput(BaseModel):
    """Copy for one channel, the fields of that channel's schema."""

    channel: Channel
    content: dict[str, Any]
    model: str
    canon_version: str
    language: Language


class ValidateContentInput(_Strict):
    """Check one channel's copy, in its language, against the channel's limits and the canon."""

    channel: Channel
    content: dict[str, Any] = Field(description="The copy's fields, e.g. {'headline': ..., 'description': ...}.")
    language: Language | None = Field(default=None, description=LANGUAGE_FIELD)


class ValidateContentOutput(BaseModel):
    """Whether the copy fits its channel, and every issue found."""

    channel: Channel
    valid: bool
    issues: list[ContentIssue]
    language: Language


@dataclass(frozen=True)
class ToolDeps:
    """The ports the standard tools run on."""

    web: WebSearch
    knowledge: KnowledgeSearch
    documents: KnowledgeFetch
    model: StructuredModel
    canon: Canon = field(default_factory=load_canon)
    language: Language = "en"
    """The language copy is written and checked in when a call names none (the chat: the kit's primary one)."""


def _web_search(deps: ToolDeps) -> Callable[[WebSearchInput, ToolContext], Costed[SearchOutput]]:
    def run(args: WebSearchInput, ctx: ToolContext) -> Costed[SearchOutput]:
        found = search_costed(deps.web, args.query, max_results=args.max_results, workspace_id=ctx.workspace_id)
        credits = 0.0 if found.cached else TAVILY_CREDITS_PER_BASIC_SEARCH
        return Costed(output=SearchOutput(results=[FindingOut.of(f) for f in found.findings]),
                      cost=ToolCost(credits=credits))
    return run


def _knowledge_search(deps: ToolDeps) -> Callable[[KnowledgeSearchInput, ToolContext], SearchOutput]:
    def run(args: KnowledgeSearchInput, ctx: ToolContext) -> SearchOutput:
        found = deps.knowledge.search(ctx.workspace_id, args.query, k=args.k)
        return SearchOutput(results=[FindingOut.of(f) for f in found])
    return run


def _knowledge_fetch(deps: ToolDeps) -> Callable[[KnowledgeFetchInput, ToolContext], KnowledgeFetchOutput]:
    def run(args: KnowledgeFetchInput, ctx: ToolContext) -> KnowledgeFetchOutput:
        document_id = args.source_id.split(":")[1]
        document = deps.documents.fetch(ctx.workspace_id, document_id)
        if document is None:
            raise NotFound(f"knowledge document {args.source_id!r} does not exist in this workspace; "
                           "use a source_id returned by knowledge_search")
        return KnowledgeFetchOutput(source_id=args.source_id, document_id=document.document_id,
                                    title=document.title, content=document.content[:args.max_chars],
                                    truncated=len(document.content) > args.max_chars, tags=list(document.tags))
    return run


def _fetch_canon(deps: ToolDeps) -> Callable[[FetchCanonInput, ToolContext], CanonEntry]:
    def run(args: FetchCanonInput, ctx: ToolContext) -> CanonEntry:
        return deps.canon.get(args.content_type)
    return run


def executor_prompt(brief: ContentBrief, entry: CanonEntry, *, language: Language = "en",
                    keep: Sequence[str] = (), code_mixing: bool = False) -> str:
    """The content executor's whole input: the language to write in, the brief and the channel's canon,
    nothing else.

    The language line is the campaign writers' (`language_instruction`): `keep` names what keeps its form (the
    kit's approved terms and products), `code_mixing` whether the kit allows mixing in English. The brief's
    `facts` come from research, so they are quoted as untrusted data."""
    canon = entry.model_dump(include={"framework", "framework_steps", "fields", "template", "compliance",
                                      "dos", "donts"}, exclude_none=True)
    facts = (f"\nFacts the copy may state:\n{quote_lines(brief.facts, source='research', label='facts')}"
             if brief.facts else "")
    shown = brief.model_dump_json(indent=1, exclude={"facts", "language"})
    return (f"Channel: {entry.content_type}\n{language_instruction(language, keep=keep, code_mixing=code_mixing)}\n"
            f"Brief:\n{shown}{facts}\nCanon {entry.version}:\n{json.dumps(canon, ensure_ascii=False, indent=1)}")


def _content_execution(deps: ToolDeps) -> Callable[[ContentExecutionInput, ToolContext],
                                                   Costed[ContentExecutionOutput]]:
    def run(args: ContentExecutionInput, ctx: ToolContext) -> Costed[ContentExecutionOutput]:
        entry = deps.canon.get(args.channel)
        language = args.brief.language or deps.language
        generated = deps.model.generate(tier=tier_for("content_execution"), system=CONTENT_EXECUTOR,
                                        prompt=executor_prompt(args.brief, entry, language=language),
                                        schema=CHANNEL_SCHEMAS[args.channel])
        model = generated.route.model if generated.route else generated.usage.model
        wasted = [a.usage for a in generated.route.attempts if a.usage] if generated.route else []
        usage: tuple[Usage, ...] = (generated.usage, *wasted)
        output = ContentExecutionOutput(channel=args.channel, content=generated.value.model_dump(), model=model,
                                        canon_version=entry.version, language=language)
        return Costed(output=output, cost=ToolCost(usage=usage))
    return run


def _validate_content(deps: ToolDeps) -> Callable[[ValidateContentInput, ToolContext], ValidateContentOutput]:
    def run(args: ValidateContentInput, ctx: ToolContext) -> ValidateContentOutput:
        language = args.language or deps.language
        issues = validate_channel_content(args.channel, args.content, deps.canon)
        if not any(i.severity == "error" for i in issues):
            issues += language_issues(args.channel, args.content, language)
        return ValidateContentOutput(channel=args.channel, issues=issues, language=language,
                                     valid=not any(i.severity == "error" for i in issues))
    return run


def language_issues(channel: str, content: dict[str, Any], language: Language) -> list[ContentIssue]:
    """The QA gate's deterministic lint of copy in `language` without a brand kit: script and language identity,
    and platform limits as each platform counts them (e.g. an email subject in grapheme clusters)."""
    lint_only: tuple[Layer, ...] = ("lint",)
    report = qa_check(channel, content, None, language=language, layers=lint_only)
    return [ContentIssue(field=f.path, rule=f.guideline, severity="error" if f.blocking else "warning",
                         message=f.message) for f in report.findings()]


def standard_tools(deps: ToolDeps, *, content_timeout_seconds: float = 150.0) -> list[Tool[Any, Any]]:
    """The six tools, with their timeouts and retry bounds.

    `content_timeout_seconds` must cover the fast tier's whole cascade (each model's timeout in turn).
    """
    once = RetryPolicy(max_attempts=1)
    return [
        Tool("web_search", "Search the public web for recent facts, trends, competitors and events. Returns "
             "results with a source_id to cite.", WebSearchInput, SearchOutput, _web_search(deps),
             timeout_seconds=20, retry=RetryPolicy(max_attempts=2), credits_per_call=TAVILY_CREDITS_PER_BASIC_SEARCH),
        Tool("knowledge_search", "Search the workspace's own documents (products, past campaigns, brand facts). "
             "Returns chunks with a 'kb:' source_id.", KnowledgeSearchInput, SearchOutput, _knowledge_search(deps),
             timeout_seconds=15, retry=RetryPolicy(max_attempts=2)),
        Tool("knowledge_fetch", "Read the whole document behind a 'kb:' source_id from knowledge_search.",
             KnowledgeFetchInput, KnowledgeFetchOutput, _knowledge_fetch(deps),
             timeout_seconds=10, retry=RetryPolicy(max_attempts=2)),
        Tool("fetch_canon", "Get the writing canon of a content type: framework, fields with limits, template "
             "and compliance rules.", FetchCanonInput, CanonEntry, _fetch_canon(deps), timeout_seconds=2,
             retry=once),
        Tool("content_execution", "Write one channel's copy from a complete brief (the writer sees only the "
             "brief and the channel's canon), in the brief's language and its script.", ContentExecutionInput,
             ContentExecutionOutput, _content_execution(deps), timeout_seconds=content_timeout_seconds, retry=once),
        Tool("validate_content", "Check one channel's copy in its language: the channel's hard limits, the canon, "
             "the script and the language; returns every issue with how to fix it.", ValidateContentInput,
             ValidateContentOutput, _validate_content(deps), timeout_seconds=2, retry=once),
    ]


def standard_belt(deps: ToolDeps, *, recorder: Callable[[ToolRun], None] | None = None,
                  content_timeout_seconds: float = 150.0) -> ToolBelt:
    """The belt of the six standard tools over `deps`."""
    return ToolBelt(standard_tools(deps, content_timeout_seconds=content_timeout_seconds), recorder=recorder)
