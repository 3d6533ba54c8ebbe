"""Fetching a web page's content through Tavily extract (official `tavily-python` SDK), SSRF-checked.

Tavily fetches and cleans the page on its side and returns Markdown. Tavily follows redirects
itself, so before it is asked, Muse resolves the redirect chain hop by hop
(`UrlPolicy.resolve_redirects`: redirects off, each hop's host resolved and every address checked
public before the hop is requested, over a connection pinned to the checked address, headers only)
and hands Tavily the final URL. Every URL Tavily reports back is checked again. This runs at ingest
time, after the API already checked the URL at submit, because DNS may answer differently by then.
What remains outside Muse's control is Tavily's own resolution of the final URL; a host that answers
Muse and Tavily differently can only reach what Tavily's network reaches, never Muse's.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING

from shared.errors import ConfigurationError, InvalidRequest, UpstreamUnavailable
from shared.integrations.tavily import tavily_client
from shared.lazy import lazy_module
from shared.safety.urls import Resolver, UrlPolicy, url_policy
from shared.settings import Settings

if TYPE_CHECKING:
    import tavily
    from tavily import errors as tavily_errors
else:
    tavily_errors = lazy_module("tavily.errors")


@dataclass
class TavilyPageExtractor:
    """Extracts one public URL as Markdown."""

    connect: Callable[[], tavily.TavilyClient]
    """Creates the SDK client; called once, on the first extract (see `shared.lazy`)."""
    urls: UrlPolicy
    """Which URLs may be fetched (`MUSE_URL_ALLOWLIST`, the resolver)."""

    @cached_property
    def client(self) -> tavily.TavilyClient:
        """The SDK client, created on first use."""
        return self.connect()

    def check(self, url: str) -> str:
        """`url` if it is public now (after DNS); `InvalidRequest` naming the rule otherwise."""
        return self.urls.check(url).url

    def extract(self, url: str) -> str:
        """The page's content as Markdown; `InvalidRequest` if it is not public or Tavily cannot fetch it."""
        requested = url
        url = self.urls.resolve_redirects(requested)
        try:
            response = self.client.extract(url, format="markdown", extract_depth="basic", timeout=60)
        except (tavily_errors.InvalidAPIKeyError, tavily_errors.ForbiddenError) as exc:
            raise ConfigurationError(f"Tavily refused extract ({exc}); check TAVILY_API_KEY and the plan.") from exc
        except tavily_errors.BadRequestError as exc:
            raise InvalidRequest(f"Tavily cannot extract {url!r}: {exc}; send a public http(s) URL.") from exc
        except (tavily_errors.UsageLimitExceededError, tavily_errors.TimeoutError, OSError) as exc:
            raise UpstreamUnavailable(f"Tavily extract of {url!r} failed: {exc}") from exc
        for result in response.get("results", []):
            reported = result.get("url")
            if isinstance(reported, str) and reported not in (url, requested):
                self.urls.check(reported)
            content = (result.get("raw_content") or "").strip()
            if content:
                return content
        failures = "; ".join(str(f.get("error", "")) for f in response.get("failed_results", [])) or "empty page"
        raise InvalidRequest(f"Tavily could not extract {url!r} ({failures}); check that the page is public, "
                             "or upload its content as a file.")


def tavily_page_extractor(settings: Settings, *, resolver: Resolver = socket.getaddrinfo) -> TavilyPageExtractor:
    """Tavily at `TAVILY_BASE_URL`, checking URLs with `resolver` (DNS) and `MUSE_URL_ALLOWLIST`."""
    return TavilyPageExtractor(partial(tavily_client, settings), url_policy(settings, resolver=resolver))
