"""Fetching a web page's content through Tavily extract (official `tavily-python` SDK).

Tavily fetches and cleans the page on its side, so the function never opens arbitrary URLs itself
(no SSRF surface) and gets Markdown back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING

from shared.errors import ConfigurationError, InvalidRequest, UpstreamUnavailable
from shared.integrations.tavily import tavily_client
from shared.lazy import lazy_module
from shared.settings import Settings

if TYPE_CHECKING:
    import tavily
    from tavily import errors as tavily_errors
else:
    tavily_errors = lazy_module("tavily.errors")


@dataclass
class TavilyPageExtractor:
    """Extracts one URL as Markdown."""

    connect: Callable[[], tavily.TavilyClient]
    """Creates the SDK client; called once, on the first extract (see `shared.lazy`)."""

    @cached_property
    def client(self) -> tavily.TavilyClient:
        """The SDK client, created on first use."""
        return self.connect()

    def extract(self, url: str) -> str:
        """The page's content as Markdown; `InvalidRequest` if Tavily cannot fetch it."""
        try:
            response = self.client.extract(url, format="markdown", extract_depth="basic", timeout=60)
        except (tavily_errors.InvalidAPIKeyError, tavily_errors.ForbiddenError) as exc:
            raise ConfigurationError(f"Tavily refused extract ({exc}); check TAVILY_API_KEY and the plan.") from exc
        except tavily_errors.BadRequestError as exc:
            raise InvalidRequest(f"Tavily cannot extract {url!r}: {exc}; send a public http(s) URL.") from exc
        except (tavily_errors.UsageLimitExceededError, tavily_errors.TimeoutError, OSError) as exc:
            raise UpstreamUnavailable(f"Tavily extract of {url!r} failed: {exc}") from exc
        for result in response.get("results", []):
            content = (result.get("raw_content") or "").strip()
            if content:
                return content
        failures = "; ".join(str(f.get("error", "")) for f in response.get("failed_results", [])) or "empty page"
        raise InvalidRequest(f"Tavily could not extract {url!r} ({failures}); check that the page is public, "
                             "or upload its content as a file.")


def tavily_page_extractor(settings: Settings) -> TavilyPageExtractor:
    """Tavily at `TAVILY_BASE_URL`."""
    return TavilyPageExtractor(partial(tavily_client, settings))
