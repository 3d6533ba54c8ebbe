"""Email to a connection's recipients through an ESP: Resend (the `resend` SDK) or Amazon SES v2 (boto3).

A connection picks its ESP in `Credentials.settings["esp"]` (`resend`, the default, or `ses`); the sender is
`Credentials.account_id`, the recipients `settings["recipients"]`, and the optional `from_name`, `reply_to`,
`cta_url` and `unsubscribe_url` (sent as RFC 8058 one-click `List-Unsubscribe`) shape the message. Every email
is tagged with the publication id, so ESP events map back to it.

Resend: one `POST /emails/batch` per 100 recipients with `Idempotency-Key` = the publication id (`…/2`, `…/3`
for later batches). Resend answers a repeated key with the first answer for 24 hours and sends nothing, so
`reconcile` is the same call again: it can only return the emails already sent. The SDK keeps its API key and
base URL in module globals (`resend.api_key`, `resend.api_url`), so calls hold a lock while they are set:
otherwise two workspaces' keys could cross between threads. Its HTTP client is replaced by one with this
adapter's timeout; neither retries.

SES (`connection.access_token` = the secret access key, `settings["aws_access_key_id"]`, optional `region`):
SendEmail takes no idempotency key, so each recipient gets one SendEmail (boto3 retries off) and each
accepted message id is reported through `PostRequest.on_part` before the next is sent; a later attempt resumes
after `posted_parts`. SES cannot look a sent message up, so its `reconcile` says the outcome stays unknown.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, cast

import boto3
import requests
import resend
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError
from resend.exceptions import ResendError
from resend.http_client import HTTPClient

from shared.publishing.adapters._support import retry_after_seconds, utc_now
from shared.publishing.ports import Credentials, PlatformError, PostRequest, PostResult, Provider
from shared.settings import Settings

BATCH_SIZE = 100
"""Resend's batch limit."""
_SDK_LOCK = threading.Lock()
_PARAGRAPH = re.compile(r"\n\s*\n")
RECONNECT_NAMES = frozenset({"missing_api_key", "invalid_api_key", "restricted_api_key"})
SES_RECONNECT_CODES = frozenset({"UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch",
                                 "ExpiredToken", "ExpiredTokenException", "AccessDeniedException"})
SES_THROTTLE_CODES = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException",
                                "LimitExceededException"})


class _TimedRequests(HTTPClient):
    """The Resend SDK's transport: `requests` with this adapter's timeout and no retries."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def request(self, method: str, url: str, headers: Mapping[str, str],
                json: dict[str, object] | list[object] | None = None, files: dict[str, Any] | None = None,
                data: dict[str, str] | None = None) -> tuple[bytes, int, Mapping[str, str]]:
        response = requests.request(method=method, url=url, headers=headers, json=cast(Any, json),
                                    timeout=self.timeout)
        return response.content, response.status_code, response.headers


def recipients_of(credentials: Credentials) -> list[str]:
    """The connection's recipients, in order, without blanks or repeats."""
    found = credentials.settings.get("recipients") or []
    if isinstance(found, str):
        found = [part for part in re.split(r"[,\s]+", found) if part]
    recipients = list(dict.fromkeys(str(address).strip() for address in found if str(address).strip()))
    if not recipients:
        raise PlatformError("The email connection has no recipients: add them to the channel's settings",
                            kind="permanent", provider="email")
    return recipients


def _message(credentials: Credentials, post: PostRequest) -> dict[str, Any]:
    """Subject, sender, HTML and text bodies and headers of the publication's email."""
    content, settings = post.content, credentials.settings
    subject = str(content.get("subject") or "").strip()
    body = str(content.get("body") or content.get("text") or "").strip()
    if not subject or not body:
        raise PlatformError("The email needs a subject and a body", kind="permanent", provider="email")
    preheader, cta = str(content.get("preheader") or ""), str(content.get("cta") or "")
    cta_url = str(settings.get("cta_url") or content.get("cta_url") or "")
    paragraphs = "".join(f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in _PARAGRAPH.split(body))
    button = (f'<p><a href="{html.escape(cta_url, quote=True)}">{html.escape(cta)}</a></p>' if cta and cta_url
              else f"<p><strong>{html.escape(cta)}</strong></p>" if cta else "")
    hidden = f'<div style="display:none;max-height:0;overflow:hidden">{html.escape(preheader)}</div>' if preheader \
        else ""
    sender = credentials.account_id
    if settings.get("from_name"):
        sender = f"{settings['from_name']} <{credentials.account_id}>"
    headers: dict[str, str] = {}
    if settings.get("unsubscribe_url"):
        headers = {"List-Unsubscribe": f"<{settings['unsubscribe_url']}>",
                   "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return {"from": sender, "subject": subject, "html": f"<!doctype html><html><body>{hidden}{paragraphs}{button}"
            "</body></html>", "text": "\n\n".join(part for part in (body, cta, cta_url) if part),
            "headers": headers, "reply_to": settings.get("reply_to")}


class EmailAdapter:
    """Sends an email publication to every recipient of the connection, once."""

    provider: Provider = "email"

    def __init__(self, settings: Settings) -> None:
        self.resend_url = settings.resend_api_url.rstrip("/")
        self.ses_endpoint_url = settings.ses_endpoint_url
        self.ses_region = settings.ses_region
        self.timeout = settings.publish_timeout_seconds
        self.http = _TimedRequests(self.timeout)

    def publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        if _esp(credentials) == "ses":
            return self._ses_publish(credentials, post)
        return self._resend(credentials, post)

    def reconcile(self, credentials: Credentials, post: PostRequest, since: datetime) -> PostResult | None:
        if _esp(credentials) == "ses":
            raise PlatformError("SES cannot look a sent email up: its delivery events tell whether it went",
                                kind="ambiguous", provider="email")
        return self._resend(credentials, post)

    def _resend(self, credentials: Credentials, post: PostRequest) -> PostResult:
        """Send (or, for a key Resend already saw, replay) every batch of the publication."""
        message = _message(credentials, post)
        recipients = recipients_of(credentials)
        ids: list[str] = []
        for number, start in enumerate(range(0, len(recipients), BATCH_SIZE), start=1):
            emails = [_resend_email(message, recipient, post.publication_id)
                      for recipient in recipients[start:start + BATCH_SIZE]]
            key = post.publication_id if number == 1 else f"{post.publication_id}/{number}"
            ids.extend(self._resend_batch(credentials.access_token, emails, key))
        return PostResult(external_id=ids[0], url=f"https://resend.com/emails/{ids[0]}", published_at=utc_now())

    def _resend_batch(self, api_key: str, emails: list[dict[str, Any]], key: str) -> list[str]:
        with _SDK_LOCK:
            resend.api_key, resend.api_url, resend.default_http_client = api_key, self.resend_url, self.http
            try:
                answer = resend.Batch.send(cast(Any, emails), {"idempotency_key": key})
            except ResendError as error:
                raise _resend_error(error) from error
            finally:
                resend.api_key = None
        ids = [str(item["id"]) for item in answer.get("data") or [] if item.get("id")]
        if len(ids) != len(emails):
            raise PlatformError(f"Resend accepted {len(ids)} of {len(emails)} emails", kind="ambiguous",
                                provider="email")
        return ids

    def _ses_publish(self, credentials: Credentials, post: PostRequest) -> PostResult:
        message = _message(credentials, post)
        recipients = recipients_of(credentials)
        client = boto3.client(
            "sesv2", region_name=str(credentials.settings.get("region") or self.ses_region),
            endpoint_url=self.ses_endpoint_url,
            aws_access_key_id=str(credentials.settings.get("aws_access_key_id") or ""),
            aws_secret_access_key=credentials.access_token,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=self.timeout,
                          read_timeout=self.timeout))
        sent = list(post.posted_parts)
        for recipient in recipients[len(sent):]:
            simple: dict[str, Any] = {"Subject": {"Data": message["subject"]},
                                      "Body": {"Html": {"Data": message["html"]}, "Text": {"Data": message["text"]}}}
            if message["headers"]:
                simple["Headers"] = [{"Name": name, "Value": value} for name, value in message["headers"].items()]
            request: dict[str, Any] = {
                "FromEmailAddress": message["from"], "Destination": {"ToAddresses": [recipient]},
                "Content": {"Simple": simple},
                "EmailTags": [{"Name": "publication_id", "Value": post.publication_id}]}
            if message["reply_to"]:
                request["ReplyToAddresses"] = [message["reply_to"]]
            try:
                answer = client.send_email(**request)
            except (ClientError, BotoCoreError) as error:
                raise _ses_error(error) from error
            sent.append(str(answer["MessageId"]))
            if post.on_part is not None:
                post.on_part(tuple(sent))
        return PostResult(external_id=sent[0], url="", published_at=utc_now(), parts=tuple(sent))


def _esp(credentials: Credentials) -> Literal["resend", "ses"]:
    esp = str(credentials.settings.get("esp") or "resend")
    if esp not in ("resend", "ses"):
        raise PlatformError(f"Unknown email provider {esp!r}: use 'resend' or 'ses'", kind="permanent",
                            provider="email")
    return cast(Literal["resend", "ses"], esp)


def _resend_email(message: dict[str, Any], recipient: str, publication_id: str) -> dict[str, Any]:
    email = {"from": message["from"], "to": [recipient], "subject": message["subject"], "html": message["html"],
             "text": message["text"], "tags": [{"name": "publication_id", "value": publication_id}]}
    if message["headers"]:
        email["headers"] = message["headers"]
    if message["reply_to"]:
        email["reply_to"] = message["reply_to"]
    return email


def _resend_error(error: ResendError) -> PlatformError:
    """How the engine should treat Resend's refusal (ports.ErrorKind); a resend with the key is always safe."""
    name, message = str(error.error_type), str(error.message)
    try:
        status = int(error.code)
    except (TypeError, ValueError):
        status = 500
    if name == "HttpClientError":
        return PlatformError(f"Resend did not answer ({message}); the emails may be sent", kind="ambiguous",
                             provider="email")
    if status == 429 or name == "concurrent_idempotent_requests":
        return PlatformError(f"Resend throttled the send: {message}", kind="retryable", provider="email",
                             status=status, retry_after_seconds=retry_after_seconds(error.headers))
    if name in RECONNECT_NAMES:
        return PlatformError(f"Resend refused the API key: {message}", kind="reconnect", provider="email",
                             status=status)
    if status >= 500:
        return PlatformError(f"Resend failed: {message}", kind="ambiguous", provider="email", status=status)
    return PlatformError(f"Resend refused the email: {message}", kind="permanent", provider="email", status=status)


def _ses_error(error: ClientError | BotoCoreError) -> PlatformError:
    """How the engine should treat an SES failure (ports.ErrorKind)."""
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
        return PlatformError(f"SES could not be reached ({type(error).__name__})", kind="retryable",
                             provider="email")
    if not isinstance(error, ClientError):
        return PlatformError(f"SES did not answer ({type(error).__name__}); the email may be sent",
                             kind="ambiguous", provider="email")
    details = error.response.get("Error", {})
    code, message = str(details.get("Code", "")), str(details.get("Message", "") or error)
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in SES_THROTTLE_CODES or status == 429:
        return PlatformError(f"SES throttled the send: {message}", kind="retryable", provider="email",
                             status=status or 429)
    if code in SES_RECONNECT_CODES:
        return PlatformError(f"SES refused the credentials: {message}", kind="reconnect", provider="email",
                             status=status)
    if status >= 500:
        return PlatformError(f"SES failed: {message}", kind="ambiguous", provider="email", status=status)
    return PlatformError(f"SES refused the email ({code}): {message}", kind="permanent", provider="email",
                         status=status)


def adapter(settings: Settings, provider: Provider) -> EmailAdapter:
    """The email adapter (`provider` is always `email`)."""
    return EmailAdapter(settings)
