"""Credentials never reach a log line, whoever logs them.

Some platform calls carry secrets in the URL because the platform wants them there (Meta's Graph API takes
`access_token`, `client_secret` and `fb_exchange_token` as query parameters), and HTTP clients log the URLs
they request (httpx: `HTTP Request: GET …` at INFO). `install_secret_log_masking` replaces the value of every
credential-bearing query or form parameter, and of a `Bearer` or `Basic` authorization, in every log record
this process creates (message, arguments, traceback), with `[REDACTED]`.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

REDACTED = "[REDACTED]"
SECRET_PARAMETERS = ("access_token", "refresh_token", "client_secret", "fb_exchange_token", "input_token",
                     "appsecret_proof", "code", "code_verifier", "api_key", "token", "id_token")
_PARAMETER = re.compile(r"(?i)(?<![A-Za-z0-9_])(" + "|".join(SECRET_PARAMETERS) + r")(=|%3D)([^&\s\"'<>#]+)")
_AUTHORIZATION = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")


def redact_secrets(text: str) -> str:
    """`text` with credential parameters' values and authorization tokens replaced by `[REDACTED]`."""
    text = _PARAMETER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    return _AUTHORIZATION.sub(lambda m: f"{m[1]} {REDACTED}", text)


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:
        return
    redacted = redact_secrets(message)
    if redacted != message:
        record.msg, record.args = redacted, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact_secrets(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact_secrets(record.exc_text)


_installed = False
_lock = threading.Lock()


def install_secret_log_masking() -> None:
    """Redact credentials in every log record of this process (idempotent; composes with other factories)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(redacted_record)
        _installed = True
