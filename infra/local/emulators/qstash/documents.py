"""The JSON the API returns for stored rows: messages, the emulator's message listing and log events."""

from __future__ import annotations

import base64
from typing import Any


def ms(seconds: float) -> int:
    return int(seconds * 1000)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def body_fields(body: bytes, text_key: str, base64_key: str) -> dict[str, str]:
    try:
        return {text_key: body.decode("utf-8")}
    except UnicodeDecodeError:
        return {base64_key: b64(body)}


def message_document(row: dict[str, Any]) -> dict[str, Any]:
    """A message as `GET /v2/messages/{id}` returns it (the keys `qstash.Message` reads)."""
    doc: dict[str, Any] = {
        "messageId": row["id"],
        "url": row["url"],
        "method": row["method"],
        "header": row["header"],
        "maxRetries": row["max_retries"],
        "notBefore": ms(row["not_before"]),
        "createdAt": ms(row["created_at"]),
        **body_fields(bytes(row["body"]), "body", "bodyBase64"),
    }
    optional = {
        "queueName": row["queue_name"],
        "callback": row["callback"],
        "failureCallback": row["failure_callback"],
        "callerIP": row["caller_ip"],
        "retryDelayExpression": row["retry_delay_expr"],
        "label": row["label"],
        "flowControlKey": row["flow_key"],
        "parallelism": row["flow_parallelism"],
        "rate": row["flow_rate"],
        "period": int(row["flow_period_s"]) if row["flow_period_s"] else None,
        "scheduleId": row.get("schedule_id"),
    }
    doc.update({k: v for k, v in optional.items() if v is not None})
    if row["callback_header"]:
        doc["callbackHeader"] = {f"Upstash-Callback-{k}": [v] for k, v in row["callback_header"].items()}
    if row["failure_callback_header"]:
        doc["failureCallbackHeader"] = {
            f"Upstash-Failure-Callback-{k}": [v] for k, v in row["failure_callback_header"].items()
        }
    return doc


def emulator_document(row: dict[str, Any]) -> dict[str, Any]:
    """A message as `GET /_emulator/messages` lists it: every state, with attempt bookkeeping."""
    return {
        **message_document(row),
        "kind": row["kind"],
        "sourceMessageId": row["source_message_id"],
        "state": row["state"],
        "retried": row["retried"],
        "attempts": row["attempts"],
        "lastStatus": row["last_status"],
        "dueAt": ms(row["due_at"]),
        "duplicates": row["duplicates"],
    }


def event_document(row: dict[str, Any]) -> dict[str, Any]:
    optional = {
        "queueName": row["queue_name"],
        "label": row["label"],
        "flowControlKey": row["flow_key"],
        "scheduleId": row.get("schedule_id"),
    }
    return {
        "time": row["time_ms"],
        "messageId": row["message_id"],
        "state": row["state"],
        "url": row["url"],
        **{k: v for k, v in optional.items() if v is not None},
        **row["extra"],
    }
