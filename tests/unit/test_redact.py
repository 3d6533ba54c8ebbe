"""Credentials in URLs and authorization headers never reach a log line."""

from __future__ import annotations

import logging

import pytest

from shared.security.redact import REDACTED, install_secret_log_masking, redact_secrets

URL = ("https://graph.facebook.com/v26.0/oauth/access_token?grant_type=fb_exchange_token&client_id=120&"
       "client_secret=s3cr3t-app&fb_exchange_token=EAAL-user-token&error_code=190")


def test_credential_parameters_and_authorizations_are_redacted_and_the_rest_kept() -> None:
    text = redact_secrets(f'HTTP Request: GET {URL} "HTTP/1.1 200 OK" Authorization: Bearer ya29.abcdefghij')
    for secret in ("s3cr3t-app", "EAAL-user-token", "ya29.abcdefghij"):
        assert secret not in text
    assert f"client_secret={REDACTED}" in text and "client_id=120" in text and "error_code=190" in text
    assert redact_secrets("/callback?code%3Dabc123&state=xyz") == f"/callback?code%3D{REDACTED}&state=xyz"
    assert redact_secrets("nothing secret here") == "nothing secret here"


def test_every_record_of_the_process_is_redacted_arguments_and_tracebacks_included(
        caplog: pytest.LogCaptureFixture) -> None:
    install_secret_log_masking()
    install_secret_log_masking()
    caplog.set_level(logging.INFO)
    logging.getLogger("httpx").info("HTTP Request: %s %s", "GET", URL)
    try:
        raise ValueError(f"failed {URL}")
    except ValueError:
        logging.getLogger("muse.test").exception("call failed")
    assert "EAAL-user-token" not in caplog.text and "s3cr3t-app" not in caplog.text
    assert caplog.text.count(f"fb_exchange_token={REDACTED}") == 2
