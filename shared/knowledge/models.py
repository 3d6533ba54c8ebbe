"""Bodies of the knowledge API and the ingest step's QStash message (validated at the boundary)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from shared.db.knowledge import SearchMode
from shared.errors import InvalidRequest
from shared.retrieval.text import ResourceKind
from shared.safety.injection import DocumentRisk
from shared.safety.urls import url_syntax

ResourceStatus = Literal["queued", "processing", "ready", "failed"]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50)]
MAX_TAGS = 20


def check_url(value: str) -> str:
    """A well-formed http(s) URL without credentials, or `ValueError` saying what is wrong.

    Whether its host is public is decided by the service (`shared.safety.urls`: DNS, the allow-list).
    """
    value = value.strip()
    try:
        url_syntax(value)
    except InvalidRequest as exc:
        raise ValueError(f"{value[:200]!r} is not an http(s) URL that can be ingested: "
                         f"{exc.message.removeprefix('`url` ')} Send e.g. https://example.com/page") from exc
    return value


class TextResource(BaseModel):
    """`POST /api/v1/knowledge` with a JSON body: inline text, Markdown or HTML, or a URL to extract."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["text", "markdown", "html", "url"] = "text"
    title: str | None = Field(default=None, min_length=1, max_length=300,
                              description="Defaults to the resource's own title (first heading, `<title>`).")
    content: str | None = Field(default=None, min_length=1, description="The text; required unless `kind` is url.")
    url: str | None = Field(default=None, description="The page to extract; required when `kind` is url. It must be "
                            "a public http(s) URL: no credentials, and neither it nor any redirect may resolve to "
                            "a loopback, private, link-local, CGNAT, multicast, reserved or cloud metadata address "
                            "(a 400 names the rule).")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @model_validator(mode="after")
    def _payload(self) -> TextResource:
        if self.kind == "url":
            if not self.url:
                raise ValueError("`url` is required when `kind` is 'url'")
            if self.content:
                raise ValueError("send either `url` (kind 'url') or `content`, not both")
        else:
            if not self.content or not self.content.strip():
                raise ValueError(f"`content` is required when `kind` is {self.kind!r}; or use kind 'url' with `url`")
            if self.url:
                raise ValueError("`url` is only for kind 'url'; put text in `content`")
        return self


class ResourceAccepted(BaseModel):
    """The resource was stored and its ingestion queued; poll `links.self` for its status."""

    id: UUID
    status: ResourceStatus
    kind: ResourceKind
    title: str
    links: dict[str, str]


class ResourceView(BaseModel):
    """`GET /api/v1/knowledge/{id}`: the whole resource (its extracted text once ready)."""

    id: UUID
    title: str
    kind: ResourceKind
    source: str
    tags: list[str]
    status: ResourceStatus
    error: str | None
    chunk_count: int
    content_type: str | None
    byte_size: int | None
    content: str | None = Field(description="The extracted text; null until the resource is ready.")
    created_at: datetime
    updated_at: datetime
    risk: DocumentRisk | None = Field(default=None, description=(
        "Prompt-injection screening of the chunks (level, flagged chunks, findings with character spans in "
        "`content` and reasons); null until ingestion has chunked the resource. Flagged chunks are never "
        "returned to agents' knowledge search; the API's search still shows them to members."))


class Citation(BaseModel):
    """Where a search result comes from: resource, chunk position, character range and PDF page."""

    resource_id: UUID
    source_id: str = Field(description="`kb:<resource id>:<position>`, as research findings cite it.")
    title: str
    kind: ResourceKind
    position: int
    char_start: int | None
    char_end: int | None
    page: int | None
    url: str | None


class SearchResult(BaseModel):
    """One chunk found."""

    content: str
    score: float
    citation: Citation
    ranks: dict[str, int | None] = Field(description="The chunk's place in the vector and full-text rankings.")
    similarity: float | None = Field(description="Cosine similarity to the query (rank, do not threshold).")


class SearchQuery(BaseModel):
    """`GET /api/v1/knowledge/search` query parameters."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, max_length=1000)
    k: int = Field(default=5, ge=1, le=50)
    type: list[ResourceKind] | None = Field(default=None, description="Only these resource kinds.")
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS, description="Only resources with all tags.")
    mode: SearchMode = "hybrid"

    @field_validator("q")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("`q` is blank; send the words to search for")
        return value.strip()


class SearchResponse(BaseModel):
    """Results of one knowledge search, best first."""

    query: str
    mode: SearchMode
    results: list[SearchResult]


class IngestMessage(BaseModel):
    """One delivery to the `ingest` function: extract, chunk and embed a batch of resource `document_id`."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    kind: Literal["ingest"] = "ingest"
    document_id: UUID
    round: int = Field(default=0, ge=0, le=100_000)
    """0 extracts and chunks; every round embeds one batch and chains the next until none is left."""
    infer_title: bool = False
    """Replace the provisional title with the one the resource declares."""
    workspace_id: UUID | None = None
    """The resource's workspace: its rounds share one QStash flow-control key, so they queue behind each
    other and never ahead of another workspace's (absent in rounds written before it existed)."""

    def dedup_id(self) -> str:
        """QStash deduplication id: a round is published once however many deliveries chain it."""
        return f"ingest-{self.document_id}-{self.round}"


class UploadFields(BaseModel):
    """Form fields sent with a `multipart/form-data` upload next to `file`."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=300)
    kind: Literal["text", "markdown", "html", "pdf"] | None = Field(
        default=None, description="Defaults to the kind the file's extension or media type says.")
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
