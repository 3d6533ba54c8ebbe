"""A wire-compatible emulator of the Tavily search API for the local stack and tests.

`tavily-python` reaches it through `TavilyClient(api_base_url=...)`. Searches run a BM25 ranking over a
small, clearly fictional corpus of Indian-marketing articles (`data/tavily_corpus.json`), so research
agents get relevant, deterministic results offline. `/_emulator/` adds a request log (tests count calls)
and a small script of injected errors, delays or canned bodies.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import flask
from werkzeug.exceptions import HTTPException

from infra.local.emulators._scripting import register_script_routes
from infra.local.emulators.config import EmulatorConfig

CORPUS_PATH = Path(__file__).with_name("data") / "tavily_corpus.json"
DEFAULT_MAX_RESULTS = 5
MAX_RESULTS_LIMIT = 20
MAX_EXTRACT_URLS = 20

_STOPWORDS = frozenset(
    "a an and are as at be by for from has have how i in is it its of on or that the their this to was "
    "what when where which who why will with about into than them they vs".split()
)
_WORD = re.compile(r"[a-z0-9\u0900-\u0dff]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'‘“(])")
_BM25_K1 = 1.5
_BM25_B = 0.75


def create_app(config: EmulatorConfig) -> flask.Flask:
    """Build the Tavily emulator over the bundled corpus; state (log, script) is per app instance."""
    app = flask.Flask(__name__)
    app.url_map.strict_slashes = False
    index = SearchIndex(load_corpus())
    control = _Control()

    @app.before_request
    def _authenticate() -> flask.Response | None:
        if flask.request.path.startswith("/_emulator"):
            return None
        header = flask.request.headers.get("Authorization", "")
        if header != f"Bearer {config.tavily_api_key}":
            return _error(401, "Unauthorized: missing or invalid API key.")
        return None

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> flask.Response:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.post("/search")
    def search() -> flask.Response:
        time.sleep(config.tavily_latency_seconds)
        return control.serve("search", lambda body: _search(index, body))

    @app.post("/extract")
    def extract() -> flask.Response:
        return control.serve("extract", lambda body: _extract(index, body))

    register_script_routes(app, control, _error)

    return app


# -------------------------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Article:
    """One corpus document; `published_date` is ISO `YYYY-MM-DD`."""

    url: str
    title: str
    content: str
    published_date: str
    topic: str

    @property
    def host(self) -> str:
        return _host(self.url)

    def raw_content(self, fmt: str) -> str:
        return self.content if fmt == "text" else f"# {self.title}\n\n{self.content}"

    def published_http_date(self) -> str:
        moment = datetime.combine(date.fromisoformat(self.published_date), datetime.min.time(), UTC)
        return format_datetime(moment, usegmt=True)


def load_corpus(path: Path = CORPUS_PATH) -> list[Article]:
    """Read the bundled corpus of fictional articles."""
    return [Article(**entry) for entry in json.loads(path.read_text(encoding="utf-8"))]


def corpus_hosts(path: Path = CORPUS_PATH) -> list[str]:
    """The fictional hosts of the corpus: the local stack trusts them by name (`MUSE_URL_ALLOWLIST`),
    since they resolve nowhere and only this emulator serves them."""
    return sorted({article.host for article in load_corpus(path)})


class SearchIndex:
    """BM25 over title (counted twice) and content, with light plural stemming."""

    def __init__(self, articles: list[Article]) -> None:
        self.articles = articles
        self.by_url = {_normalise_url(article.url): article for article in articles}
        self._terms = [Counter(_terms(f"{a.title} {a.title} {a.content}")) for a in articles]
        self._lengths = [sum(terms.values()) for terms in self._terms]
        self._average_length = sum(self._lengths) / max(len(self._lengths), 1)
        document_frequency = Counter(term for terms in self._terms for term in terms)
        total = len(articles)
        self._idf = {
            term: math.log(1 + (total - count + 0.5) / (count + 0.5)) for term, count in document_frequency.items()
        }

    def rank(self, query: str) -> list[tuple[Article, float]]:
        """Articles with a positive score, best first (ties keep corpus order)."""
        query_terms = _terms(query)
        scored = []
        for position, (article, terms) in enumerate(zip(self.articles, self._terms, strict=True)):
            score = self._score(query_terms, terms, self._lengths[position])
            if score > 0:
                scored.append((position, article, score))
        scored.sort(key=lambda item: (-item[2], item[0]))
        return [(article, score) for _, article, score in scored]

    def _score(self, query_terms: list[str], terms: Counter[str], length: int) -> float:
        score = 0.0
        for term in set(query_terms):
            frequency = terms.get(term, 0)
            if frequency:
                norm = _BM25_K1 * (1 - _BM25_B + _BM25_B * length / self._average_length)
                score += self._idf[term] * frequency * (_BM25_K1 + 1) / (frequency + norm)
        return score


# ------------------------------------------------------------------------------------------ handlers


def _search(index: SearchIndex, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """`POST /search` with Tavily's filters; only the relative `time_range`/`days` are ignored."""
    started = time.monotonic()
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        return 400, _detail("Query is missing.")
    try:
        requested = body.get("max_results")
        max_results = DEFAULT_MAX_RESULTS if requested is None else int(requested)
    except (TypeError, ValueError):
        return 400, _detail("max_results must be an integer.")
    max_results = min(max(max_results, 0), MAX_RESULTS_LIMIT)
    topic = body.get("topic") or "general"
    ranked = [(a, s) for a, s in index.rank(query) if _passes_filters(a, body, topic, query)]
    top = ranked[:max_results]
    results = [_result(article, score, query, body, topic) for article, score in top]
    payload: dict[str, Any] = {
        "query": query,
        "follow_up_questions": None,
        "answer": _answer(query, [a for a, _ in top], body.get("include_answer")),
        "images": [],
        "results": results,
        "response_time": round(time.monotonic() - started, 3),
        "request_id": str(uuid.uuid4()),
    }
    if body.get("include_usage"):
        payload["usage"] = {"credits": 2 if body.get("search_depth") == "advanced" else 1}
    return 200, payload


def _extract(index: SearchIndex, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """`POST /extract`: corpus URLs succeed, any other URL lands in `failed_results`."""
    started = time.monotonic()
    urls = body.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls:
        return 400, _detail("urls is missing.")
    if len(urls) > MAX_EXTRACT_URLS:
        return 400, _detail(f"At most {MAX_EXTRACT_URLS} urls per request.")
    fmt = body.get("format") or "markdown"
    results, failed = [], []
    for url in urls:
        article = index.by_url.get(_normalise_url(str(url)))
        if article is None:
            failed.append({"url": url, "error": "Failed to fetch url: not in the emulator corpus."})
            continue
        result: dict[str, Any] = {"url": url, "raw_content": article.raw_content(fmt)}
        if body.get("include_images"):
            result["images"] = []
        if body.get("include_favicon"):
            result["favicon"] = _favicon(article)
        results.append(result)
    payload: dict[str, Any] = {
        "results": results,
        "failed_results": failed,
        "response_time": round(time.monotonic() - started, 3),
        "request_id": str(uuid.uuid4()),
    }
    if body.get("include_usage"):
        payload["usage"] = {"credits": math.ceil(len(results) / 5)}
    return 200, payload


def _passes_filters(article: Article, body: dict[str, Any], topic: str, query: str) -> bool:
    if topic in ("news", "finance") and article.topic != topic:
        return False
    include = [_domain(d) for d in body.get("include_domains") or []]
    if include and not any(_within(article.host, d) for d in include):
        return False
    if any(_within(article.host, _domain(d)) for d in body.get("exclude_domains") or []):
        return False
    if body.get("start_date") and article.published_date < str(body["start_date"]):
        return False
    if body.get("end_date") and article.published_date > str(body["end_date"]):
        return False
    if body.get("exact_match"):
        haystack = f"{article.title} {article.content}".lower()
        return all(phrase.lower() in haystack for phrase in re.findall(r'"([^"]+)"', query))
    return True


def _result(article: Article, score: float, query: str, body: dict[str, Any], topic: str) -> dict[str, Any]:
    raw = body.get("include_raw_content")
    result: dict[str, Any] = {
        "url": article.url,
        "title": article.title,
        "content": _snippet(article.content, query),
        "score": round(score / (score + 5.0), 4),
        "raw_content": article.raw_content("text" if raw == "text" else "markdown") if raw else None,
    }
    if topic == "news":
        result["published_date"] = article.published_http_date()
    if body.get("include_favicon"):
        result["favicon"] = _favicon(article)
    return result


def _snippet(content: str, query: str, sentences: int = 2) -> str:
    """The sentences sharing most terms with the query, in their original order."""
    split = _sentences(content)
    wanted = set(_terms(query))
    ranked = sorted(range(len(split)), key=lambda i: (-len(wanted & set(_terms(split[i]))), i))
    return " ".join(split[i] for i in sorted(ranked[:sentences]))


def _answer(query: str, articles: list[Article], include_answer: Any) -> str | None:
    """A deterministic extractive answer from the top results, marked as emulated."""
    if not include_answer or not articles:
        return None
    per_article = 2 if include_answer == "advanced" else 1
    picked = [_snippet(article.content, query, per_article) for article in articles[:3]]
    return "[emulated answer] " + " ".join(picked)


def _sentences(text: str) -> list[str]:
    return [sentence.strip() for sentence in _SENTENCE_END.split(text) if sentence.strip()]


def _terms(text: str) -> list[str]:
    return [_stem(word) for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _host(url: str) -> str:
    host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower()
    return host.removeprefix("www.")


def _domain(value: str) -> str:
    return _host(value.strip())


def _within(host: str, domain: str) -> bool:
    return bool(domain) and (host == domain or host.endswith(f".{domain}"))


def _normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{_host(url)}{parts.path.rstrip('/')}"


def _favicon(article: Article) -> str:
    return f"https://{article.host}/favicon.ico"


# -------------------------------------------------------------------------------- control plane


@dataclass
class _Rule:
    """A scripted behaviour for matching requests; `remaining` None means unlimited."""

    index: int
    endpoint: str | None
    contains: str | None
    status: int | None
    message: str | None
    response: Any
    delay_seconds: float
    remaining: int | None

    @classmethod
    def parse(cls, index: int, raw: dict[str, Any]) -> _Rule:
        match = raw.get("match") or {}
        return cls(
            index=index,
            endpoint=(match.get("endpoint") or "").strip("/") or None,
            contains=match.get("contains"),
            status=int(raw["status"]) if raw.get("status") is not None else None,
            message=raw.get("message"),
            response=(raw.get("response") or {}).get("json"),
            delay_seconds=float(raw.get("delay_seconds") or 0.0),
            remaining=int(raw["times"]) if raw.get("times") is not None else None,
        )

    def matches(self, endpoint: str, text: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        return self.contains is None or self.contains in text

    def view(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "match": {"endpoint": self.endpoint, "contains": self.contains},
            "status": self.status,
            "response": {"json": self.response} if self.response is not None else None,
            "delay_seconds": self.delay_seconds,
            "remaining": self.remaining,
        }


@dataclass
class _Control:
    """Request log and script, shared by the request threads of one app."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    rules: list[_Rule] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    counter: itertools.count = field(default_factory=itertools.count)

    def serve(self, endpoint: str, handler: Callable[[dict[str, Any]], tuple[int, Any]]) -> flask.Response:
        """Run `handler(body)` unless a rule intercepts; log the request either way."""
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            body = {}
        text = _request_text(endpoint, body)
        rule = self._claim(endpoint, text)
        if rule and rule.delay_seconds > 0:
            time.sleep(rule.delay_seconds)
        if rule and rule.status and rule.status >= 400:
            status, payload = rule.status, _detail(rule.message or f"Emulated error {rule.status}.")
        elif rule and rule.response is not None:
            status, payload = rule.status or 200, rule.response
        else:
            status, payload = handler(body)
        self._record(endpoint, text, body, rule, status, payload)
        response = flask.jsonify(payload)
        response.status_code = status
        return response

    def _claim(self, endpoint: str, text: str) -> _Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.matches(endpoint, text):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

    def _record(
        self, endpoint: str, text: str, body: dict[str, Any], rule: _Rule | None, status: int, payload: Any
    ) -> None:
        results = payload.get("results") if isinstance(payload, dict) else None
        entry = {
            "endpoint": endpoint,
            "path": flask.request.path,
            "text": text,
            "time": time.time(),
            "rule": rule.index if rule else None,
            "status": status,
            "body": body,
            "result_urls": [r.get("url") for r in results or [] if isinstance(r, dict)],
        }
        with self.lock:
            entry["seq"] = len(self.log)
            self.log.append(entry)

    def add_rules(self, raw_rules: list[dict[str, Any]]) -> None:
        with self.lock:
            self.rules.extend(_Rule.parse(next(self.counter), raw) for raw in raw_rules)

    def clear_rules(self) -> None:
        with self.lock:
            self.rules.clear()

    def rule_views(self) -> list[dict[str, Any]]:
        with self.lock:
            return [rule.view() for rule in self.rules]

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.log)

    def clear_requests(self) -> None:
        with self.lock:
            self.log.clear()


def _request_text(endpoint: str, body: dict[str, Any]) -> str:
    if endpoint == "extract":
        urls = body.get("urls")
        return "\n".join(urls) if isinstance(urls, list) else str(urls or "")
    return str(body.get("query") or "")


def _detail(message: str) -> dict[str, Any]:
    return {"detail": {"error": message}}


def _error(status: int, message: str) -> flask.Response:
    """Tavily's error envelope, which `tavily.errors` reads from `detail.error`."""
    response = flask.jsonify(_detail(message))
    response.status_code = status
    return response
