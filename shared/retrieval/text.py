"""From an original (text, Markdown, HTML, PDF) to plain text, and from plain text to overlapping chunks.

Chunks are slices of the normalized text with their character offsets (and PDF page), so a citation can
point back into the stored resource. Pure functions: no I/O besides parsing the bytes given.
"""

from __future__ import annotations

import bisect
import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, Literal

from shared.errors import InvalidRequest
from shared.lazy import lazy_module

if TYPE_CHECKING:
    import pypdf
    from pypdf import errors as pypdf_errors
else:
    pypdf = lazy_module("pypdf")
    pypdf_errors = lazy_module("pypdf.errors")

ResourceKind = Literal["text", "markdown", "html", "pdf", "url"]
RESOURCE_KINDS: tuple[ResourceKind, ...] = ("text", "markdown", "html", "pdf", "url")

CHUNK_CHARS = 800
"""About 200 English tokens, or 300–400 in Devanagari: well inside e5's 512-token window."""
CHUNK_OVERLAP = 120


@dataclass(frozen=True)
class Extracted:
    """The plain text of a resource, the title it declares (if any) and where each PDF page starts."""

    text: str
    title: str | None = None
    page_starts: tuple[int, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """`text[start:end]` of the normalized document, its index, and its 1-based PDF page (if paged)."""

    position: int
    content: str
    start: int
    end: int
    page: int | None = None


# ------------------------------------------------------------------------------------------ normalizing

_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u202f\u3000]+")
_TRAILING = re.compile(r" +\n")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """NFC, Unix newlines, single spaces, at most one blank line in a row, no leading/trailing space."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = _SPACES.sub(" ", text)
    text = _TRAILING.sub("\n", text)
    text = re.sub(r"\n +", "\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


# ------------------------------------------------------------------------------------------------ HTML

_SKIPPED_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "object", "canvas"})
_PARAGRAPH_TAGS = frozenset({"p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "table",
                             "blockquote", "pre", "figure", "ul", "ol", "dl", "form", "fieldset", "address",
                             "h1", "h2", "h3", "h4", "h5", "h6", "hr"})
_LINE_TAGS = frozenset({"br", "li", "tr", "dt", "dd", "figcaption", "caption", "option"})
_VOID_TAGS = frozenset({"br", "hr", "img", "input", "meta", "link", "source", "wbr", "area", "base", "col",
                        "embed", "param", "track"})


class _HtmlText(HTMLParser):
    """Collects visible text with paragraph breaks at block elements; remembers `<title>` and the first `<h1>`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0
        self.title: list[str] | None = None
        self.title_text = ""
        self.h1: list[str] | None = None
        self.h1_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self.title_text:
            self.title = []
        if tag in _VOID_TAGS:
            if tag in ("br", "hr"):
                self.parts.append("\n" if tag == "br" else "\n\n")
            return
        if tag in _SKIPPED_TAGS:
            self.skip += 1
        elif tag == "pre":
            self.pre += 1
        if tag == "h1" and not self.h1_text:
            self.h1 = []
        self._break(tag)
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.title is not None:
            self.title_text, self.title = " ".join("".join(self.title).split()), None
        if tag == "h1" and self.h1 is not None:
            self.h1_text, self.h1 = " ".join("".join(self.h1).split()), None
        if tag in _SKIPPED_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _PARAGRAPH_TAGS:
            self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "hr"):
            self.parts.append("\n" if tag == "br" else "\n\n")

    def handle_data(self, data: str) -> None:
        if self.title is not None:
            self.title.append(data)
            return
        if self.skip:
            return
        if self.h1 is not None:
            self.h1.append(data)
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))

    def _break(self, tag: str) -> None:
        if tag in _PARAGRAPH_TAGS:
            self.parts.append("\n\n")
        elif tag in _LINE_TAGS:
            self.parts.append("\n")


def html_to_text(html: str) -> Extracted:
    """Visible text of an HTML page (scripts, styles and `<head>` dropped); title from `<title>` or `<h1>`."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return Extracted(text=normalize_text("".join(parser.parts)), title=parser.title_text or parser.h1_text or None)


# -------------------------------------------------------------------------------------------- Markdown

_FENCE = re.compile(r"^\s*(```|~~~)")
_ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT_RULE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_HR = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+.*$")
_QUOTE = re.compile(r"^\s{0,3}(>\s?)+")
_LIST_MARKER = re.compile(r"^(\s*)(?:[-*+]|\d{1,9}[.)])\s+(?:\[[ xX]\]\s+)?")
_INLINE = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),
    (re.compile(r"<[A-Za-z/!][^>]*>"), ""),
    (re.compile(r"`+([^`]+?)`+"), r"\1"),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"\1"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),
]


def _inline_markdown(line: str) -> str:
    for pattern, replacement in _INLINE:
        line = pattern.sub(replacement, line)
    return line


_FRONT_MATTER_LINE = re.compile(r"^(\s*[\w-]+\s*:.*|\s+.*|\s*-\s.*|\s*)$")


def _without_front_matter(lines: list[str]) -> list[str]:
    """Drop a leading YAML block (`---` … `---` of `key: value` lines), as static-site Markdown has."""
    if not lines or lines[0].strip() != "---":
        return lines
    for index, line in enumerate(lines[1:50], start=1):
        if line.strip() == "---":
            return lines[index + 1:]
        if not _FRONT_MATTER_LINE.match(line):
            return lines
    return lines


def markdown_to_text(markdown: str) -> Extracted:
    """Plain text of Markdown (CommonMark/GFM syntax removed, code kept); title from the first heading."""
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = _without_front_matter(lines)
    out: list[str] = []
    title: str | None = None
    fence: str | None = None
    for line in lines:
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1) == fence:
                fence = None
                out.append("")
            else:
                out.append(line)
            continue
        if opened:
            fence = opened.group(1)
            out.append("")
            continue
        heading = _ATX_HEADING.match(line)
        if heading:
            text = _inline_markdown(heading.group(2))
            title = title or text.strip() or None
            out.extend(["", text, ""])
            continue
        if _SETEXT_RULE.match(line) and out and out[-1].strip():
            title = title or out[-1].strip()
            out.append("")
            continue
        if _HR.match(line) or _TABLE_RULE.match(line) or _REFERENCE_DEF.match(line):
            out.append("")
            continue
        line = _LIST_MARKER.sub(r"\1", _QUOTE.sub("", line))
        if line.strip().startswith("|") or line.count("|") >= 2:
            line = " ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
        out.append(_inline_markdown(line))
    return Extracted(text=normalize_text("\n".join(out)), title=title)


# ------------------------------------------------------------------------------------------------- PDF


def pdf_to_text(data: bytes) -> Extracted:
    """Text of every page (pypdf's layout-free extraction), pages separated by a blank line.

    Raises `InvalidRequest` for a file that is not a readable PDF, is encrypted, or has no text layer.
    """
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidRequest("The PDF is password-protected; upload a copy without a password.")
        pages = [normalize_text(page.extract_text() or "") for page in reader.pages]
        metadata: Mapping[str, Any] = reader.metadata or {}
        title = (metadata.get("/Title") or "").strip() or None
    except (pypdf_errors.PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f"The file is not a readable PDF ({exc}); upload a valid PDF or its text.") from exc
    starts: list[int] = []
    text_parts: list[str] = []
    offset = 0
    for page in pages:
        starts.append(offset)
        text_parts.append(page)
        offset += len(page) + 2
    text = "\n\n".join(text_parts)
    if not text.strip():
        raise InvalidRequest("The PDF has no text layer (a scan?); run OCR on it or upload its text instead.")
    return Extracted(text=text, title=str(title) if title else None, page_starts=tuple(starts))


# ------------------------------------------------------------------------------------------- dispatch


def decode_text(data: bytes, *, charset: str | None = None, strict: bool = True) -> str:
    """Bytes to str: the declared charset, else UTF-8 (with or without BOM)."""
    try:
        return data.decode(charset or "utf-8-sig", errors="strict" if strict else "replace")
    except LookupError as exc:
        raise InvalidRequest(f"Unknown charset {charset!r}; send UTF-8 text.") from exc
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"The content is not valid {charset or 'UTF-8'} text (byte {exc.start}); "
                             "save it as UTF-8 and upload again.") from exc


def extract(kind: ResourceKind, data: bytes, *, charset: str | None = None) -> Extracted:
    """The plain text of an original of `kind` (a URL's original is the Markdown Tavily extracted)."""
    if kind == "pdf":
        return pdf_to_text(data)
    if kind == "html":
        return html_to_text(decode_text(data, charset=charset, strict=False))
    if kind in ("markdown", "url"):
        return markdown_to_text(decode_text(data, charset=charset))
    text = normalize_text(decode_text(data, charset=charset))
    first_line = next((line.strip() for line in text.split("\n") if line.strip()), "")
    return Extracted(text=text, title=first_line[:120] or None)


# ------------------------------------------------------------------------------------------- chunking

_PARAGRAPH_BREAK = re.compile(r"\n\n")
_SENTENCE_END = re.compile(r"[.!?।॥…](?:[\"'”’)\]]*)(?=\s)")
_LINE_BREAK = re.compile(r"\n")
_SPACE = re.compile(r"\s")


def _break_before(text: str, start: int, limit: int, earliest: int) -> int:
    """Where to end a chunk in `text[earliest:limit]`: after a paragraph, else a sentence, line or word."""
    window = text[earliest:limit]
    for pattern, keep in ((_PARAGRAPH_BREAK, 0), (_SENTENCE_END, 1), (_LINE_BREAK, 0), (_SPACE, 0)):
        matches = list(pattern.finditer(window))
        if matches:
            return earliest + (matches[-1].end() if keep else matches[-1].start())
    return limit


def _next_start(text: str, at: int, end: int) -> int:
    """The first word start at or after `at` (before `end`), so an overlap never begins mid-word."""
    if at > 0 and not text[at - 1].isspace():
        match = _SPACE.search(text, at, end)
        at = match.end() if match else end
    while at < len(text) and text[at].isspace():
        at += 1
    return at


@dataclass
class _Pages:
    starts: tuple[int, ...] = field(default_factory=tuple)

    def of(self, offset: int) -> int | None:
        return bisect.bisect_right(self.starts, offset) if self.starts else None


def chunk_text(text: str, *, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP,
               page_starts: tuple[int, ...] = ()) -> list[Chunk]:
    """Split `text` into chunks of at most `size` characters overlapping by up to `overlap`.

    A chunk ends at the last paragraph break in its second half, else the last sentence end, line
    break or space; only a single word longer than half a chunk is cut. The next chunk starts at the
    first word boundary `overlap` characters before the previous end.
    """
    if size < 20:
        raise ValueError(f"chunk size must be at least 20 characters, got {size}")
    if not 0 <= overlap < size // 2:
        raise ValueError(f"overlap must be in [0, {size // 2}) for size {size}, got {overlap}")
    pages = _Pages(page_starts)
    chunks: list[Chunk] = []
    start = _next_start(text, 0, len(text))
    while start < len(text):
        limit = min(start + size, len(text))
        end = limit if limit == len(text) else _break_before(text, start, limit, start + size // 2)
        content = text[start:end].rstrip()
        if content:
            chunks.append(Chunk(len(chunks), content, start, start + len(content), pages.of(start)))
        if end >= len(text):
            break
        start = max(_next_start(text, max(end - overlap, start + 1), end), start + 1)
    return chunks
