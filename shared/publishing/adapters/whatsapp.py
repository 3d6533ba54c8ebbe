"""WhatsApp Business Cloud API: an approved marketing template to the connection's opted-in recipients, via pywa.

Meta has no official Python SDK for WhatsApp; pywa (reference `publishing-apis.md` §5h) builds the template
message and raises Graph's error codes as `WhatsAppError`. pywa pins its httpx client to
`https://graph.facebook.com/v{version}`; the client handed to it is ours, so its public `base_url` is set back to
`WHATSAPP_GRAPH_URL` after pywa is built. That client never retries and has `MUSE_META_TIMEOUT_SECONDS`.

WhatsApp connections use a system-user token (an API key, no OAuth). Business-initiated messages must be
approved templates; the connection's settings name it (`template`, `template_language`) and list the
`recipients` who opted in. The copy fills the template's body: `template_params` when the content has them,
else its text as the one body parameter.

Each recipient is one part of the publication: after a recipient's message is accepted its part
(`<recipient>:<wamid>`) is reported through `post.on_part`, and a later attempt skips the recipients in
`post.posted_parts`, so a 429 halfway through never sends anyone the template twice. Every message carries
the publication id in `biz_opaque_callback_data`. The Cloud API has no lookup of sent messages (their state
arrives later in status webhooks), so `reconcile` never confirms or re-sends: an unknown outcome stays
`unconfirmed` rather than risk a second marketing message (cost, the per-user cap 131049, quality rating).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import httpx
from pywa import WhatsApp
from pywa.errors import WhatsAppError
from pywa.types.templates import TemplateLanguage

from shared.publishing.adapters.meta import post_text
from shared.publishing.ports import Credentials, ErrorKind, PlatformError, PostRequest, PostResult, Provider
from shared.settings import Settings

THROTTLING_CODES = frozenset({4, 80007, 130429, 131056})
"""Throughput, pair rate and rate limits: the message was not sent."""
RECONNECT_CODES = frozenset({0, 190})
MAX_PARAM_CHARS = 1024


def classify(error: WhatsAppError) -> ErrorKind:
    """What a Cloud API error means for the engine."""
    status = error.status_code or 0
    if error.code in RECONNECT_CODES or status == 401:
        return "reconnect"
    if error.code in THROTTLING_CODES or status == 429:
        return "retryable"
    if status >= 500 or error.code in (1, 2, 131000):
        return "ambiguous"
    return "permanent"


def template_params(content: Mapping[str, Any]) -> list[str]:
    """The body parameters: `template_params` as given, else the copy's text (one parameter), else none."""
    given = content.get("template_params")
    if isinstance(given, list):
        return [str(value)[:MAX_PARAM_CHARS] for value in given]
    text = post_text(content)
    return [text[:MAX_PARAM_CHARS]] if text else []


@dataclass(frozen=True)
class _LanguageCode:
    """A template language pywa does not list yet, sent as it is (pywa reads only `.value`)."""

    value: str


def template_language(code: str) -> TemplateLanguage:
    """pywa's member for `code`; a code pywa does not know (Odia `or`, Assamese `as` in pywa 4.5) would become
    `UNKNOWN` on the wire, so it is passed through unchanged instead."""
    known = TemplateLanguage._value2member_map_.get(code)
    return cast(TemplateLanguage, known if known is not None else _LanguageCode(code))


def _part(recipient: str, wamid: str) -> str:
    return f"{recipient}:{wamid}"


@dataclass
class WhatsAppAdapter:
    """Template messages from the connection's phone number (`Credentials.account_id`)."""

    base_url: str
    version: str
    timeout: float
    provider: Provider = "whatsapp"

    def _client(self, credentials: Credentials) -> tuple[WhatsApp, httpx.Client]:
        session = httpx.Client(timeout=self.timeout, transport=httpx.HTTPTransport(retries=0))
        client = WhatsApp(phone_id=credentials.account_id, token=credentials.access_token, session=session,
                          api_version=self.version.removeprefix("v"), validate_updates=False)
        session.base_url = httpx.URL(f"{self.base_url.rstrip('/')}/{self.version}")
        return client, session

    def publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        """Send the template once to each opted-in recipient not already reached by an earlier attempt."""
        recipients = [str(number).strip() for number in credentials.settings.get("recipients") or [] if number]
        template = credentials.settings.get("template")
        if not recipients:
            raise PlatformError("The WhatsApp connection lists no opted-in recipients (`recipients`); WhatsApp "
                                "allows business-initiated messages only to people who opted in.",
                                kind="permanent", provider="whatsapp")
        if not isinstance(template, str) or not template:
            raise PlatformError("The WhatsApp connection names no approved marketing template (`template`).",
                                kind="permanent", provider="whatsapp")
        language = template_language(str(credentials.settings.get("template_language") or "en"))
        params = template_params(post.content)
        components = [{"type": "body", "parameters": [{"type": "text", "text": value} for value in params]}] \
            if params else None
        parts = list(post.posted_parts)
        reached = {part.split(":", 1)[0] for part in parts}
        client, session = self._client(credentials)
        with session:
            for recipient in recipients:
                if recipient.lstrip("+") in reached:
                    continue
                try:
                    sent = client.send_template(to=recipient.lstrip("+"), name=template, language=language,
                                                params=components, tracker=post.publication_id)
                except WhatsAppError as exc:
                    raise PlatformError(f"WhatsApp refused the template to recipient {len(parts) + 1} of "
                                        f"{len(recipients)}: {exc.message} (code {exc.code})", kind=classify(exc),
                                        provider="whatsapp", status=exc.status_code) from exc
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    raise PlatformError(f"WhatsApp Cloud API unreachable ({type(exc).__name__}); nothing was sent "
                                        "to the remaining recipients.", kind="retryable", provider="whatsapp") from exc
                except httpx.HTTPError as exc:
                    raise PlatformError(f"The template to recipient {len(parts) + 1} of {len(recipients)} did not "
                                        f"complete ({type(exc).__name__}); whether it was sent is unknown.",
                                        kind="ambiguous", provider="whatsapp") from exc
                parts.append(_part(recipient.lstrip("+"), sent.id))
                reached.add(recipient.lstrip("+"))
                if post.on_part is not None:
                    post.on_part(tuple(parts))
        if not parts:
            raise PlatformError("No WhatsApp message was sent.", kind="permanent", provider="whatsapp")
        first = parts[0].split(":", 1)[1]
        return PostResult(external_id=first, url="", published_at=datetime.now(UTC), parts=tuple(parts))

    def reconcile(self, credentials: Credentials, post: PostRequest, since: datetime) -> PostResult | None:
        """Never a re-send and never a guess: the Cloud API cannot look a message up, so None (`unconfirmed`)
        unless earlier attempts recorded every recipient as reached."""
        recipients = {str(number).strip().lstrip("+") for number in credentials.settings.get("recipients") or []}
        reached = {part.split(":", 1)[0] for part in post.posted_parts}
        if post.posted_parts and recipients and recipients <= reached:
            return PostResult(external_id=post.posted_parts[0].split(":", 1)[1], url="",
                              published_at=datetime.now(UTC), parts=post.posted_parts)
        return None


def adapter(settings: Settings, provider: Provider) -> WhatsAppAdapter:
    """The WhatsApp adapter at `WHATSAPP_GRAPH_URL` / `META_GRAPH_VERSION`."""
    if provider != "whatsapp":
        raise ValueError(f"shared.publishing.adapters.whatsapp publishes to whatsapp, not {provider!r}")
    return WhatsAppAdapter(base_url=settings.whatsapp_graph_url, version=settings.meta_graph_version,
                           timeout=settings.meta_timeout_seconds)
