"""Supabase Storage emulator: the bucket and object routes `storage3` (and `supabase.Client.storage`) call.

Mounted at `/supabase/storage` in the local stack, so `SUPABASE_URL=<stack>/supabase` reaches it as
`<SUPABASE_URL>/storage/v1/...` exactly like a Supabase project (reference `sdk-wire-details.md` §4.4).
Objects and buckets live in Postgres (schema `storage_emulator`), so they survive restarts of the
stack. Only the service-role key is accepted (`Authorization: Bearer <key>` plus `apikey`): Muse
reaches Storage from its backend only, so storage RLS for user tokens is not emulated.

Served: buckets (create, get, list, update, empty, delete) and objects (upload via POST/PUT with
multipart or a raw body and `x-upsert`, download, authenticated download, info, list, remove), and signed
URLs (`POST /object/sign/{bucket}/{path}` with `expiresIn`; the URL's `token` is an HS256 JWT naming the
object, so `GET /object/sign/...?token=` needs no key, as publishing platforms fetch media).
Errors use Storage's body `{"statusCode": "404", "error": "not_found", "message": "Object not found"}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import flask
import jwt
import psycopg
from psycopg.types.json import Jsonb

from infra.local.emulators.config import EmulatorConfig
from infra.local.emulators.pgschema import SchemaDatabase

LOCAL_SERVICE_ROLE_KEY = "local-supabase-service-role-key"
"""The service-role key of the local stack (`SUPABASE_SERVICE_ROLE_KEY`)."""
SCHEMA = "storage_emulator"
_SCHEMA_LOCK = 0x05_7A_53_01
_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.buckets (
    id text PRIMARY KEY,
    name text NOT NULL,
    public boolean NOT NULL DEFAULT false,
    file_size_limit bigint,
    allowed_mime_types text[],
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.objects (
    bucket_id text NOT NULL REFERENCES {SCHEMA}.buckets (id),
    name text NOT NULL,
    id uuid NOT NULL,
    data bytea NOT NULL,
    content_type text NOT NULL,
    cache_control text,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket_id, name)
);
"""


class StorageError(Exception):
    """An answer in Storage's error shape."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _bucket_missing() -> StorageError:
    return StorageError(404, "Bucket not found", "Bucket not found")


def _object_missing() -> StorageError:
    return StorageError(404, "not_found", "Object not found")


def create_app(config: EmulatorConfig, *, service_role_key: str = LOCAL_SERVICE_ROLE_KEY) -> flask.Flask:
    """Build the Storage emulator over `config.database_url`."""
    app = flask.Flask(__name__)
    app.url_map.strict_slashes = False
    store = _Store(config.database_url)
    signing_key = hashlib.sha256(b"signed-url|" + service_role_key.encode()).digest()

    @app.before_request
    def _authenticate() -> Any:
        if flask.request.method == "GET" and flask.request.path.startswith("/v1/object/sign/"):
            return None
        scheme, _, token = flask.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or not flask.request.headers.get("apikey"):
            return _error(StorageError(400, "Unauthorized", "headers must have required property 'authorization'"))
        if not hmac.compare_digest(token.strip().encode(), service_role_key.encode()):
            return _error(StorageError(403, "Unauthorized", "invalid signature: this emulator accepts only the "
                                                            "service-role key (SUPABASE_SERVICE_ROLE_KEY)"))
        return None

    @app.errorhandler(StorageError)
    def _storage_error(exc: StorageError) -> Any:
        return _error(exc)

    @app.post("/v1/bucket")
    def create_bucket() -> Any:
        body = flask.request.get_json(silent=True) or {}
        bucket_id = str(body.get("id") or body.get("name") or "")
        if not bucket_id or "/" in bucket_id:
            raise StorageError(400, "Invalid Input", "The bucket id is missing or contains '/'")
        store.create_bucket(bucket_id, body)
        return {"name": bucket_id}

    @app.get("/v1/bucket")
    def list_buckets() -> Any:
        return flask.jsonify([_bucket_json(row) for row in store.buckets()])

    @app.get("/v1/bucket/<bucket_id>")
    def get_bucket(bucket_id: str) -> Any:
        return _bucket_json(store.bucket(bucket_id))

    @app.put("/v1/bucket/<bucket_id>")
    def update_bucket(bucket_id: str) -> Any:
        store.update_bucket(bucket_id, flask.request.get_json(silent=True) or {})
        return {"message": "Successfully updated"}

    @app.post("/v1/bucket/<bucket_id>/empty")
    def empty_bucket(bucket_id: str) -> Any:
        store.empty_bucket(bucket_id)
        return {"message": "Successfully emptied"}

    @app.delete("/v1/bucket/<bucket_id>")
    def delete_bucket(bucket_id: str) -> Any:
        store.delete_bucket(bucket_id)
        return {"message": "Successfully deleted"}

    @app.post("/v1/object/list/<bucket_id>")
    def list_objects(bucket_id: str) -> Any:
        body = flask.request.get_json(silent=True) or {}
        return flask.jsonify(store.list(bucket_id, prefix=str(body.get("prefix") or ""),
                                        limit=int(body.get("limit") or 100), offset=int(body.get("offset") or 0),
                                        search=str(body.get("search") or "")))

    @app.get("/v1/object/info/<bucket_id>/<path:name>")
    @app.get("/v1/object/info/authenticated/<bucket_id>/<path:name>")
    def info(bucket_id: str, name: str) -> Any:
        return _info_json(store.get(bucket_id, _name(name)))

    @app.get("/v1/object/authenticated/<bucket_id>/<path:name>")
    @app.get("/v1/object/<bucket_id>/<path:name>")
    def download(bucket_id: str, name: str) -> Any:
        row = store.get(bucket_id, _name(name))
        headers = {"ETag": f'"{row["id"]}"', "Cache-Control": f"max-age={row['cache_control'] or 3600}",
                   "Last-Modified": row["updated_at"].strftime("%a, %d %b %Y %H:%M:%S GMT")}
        return flask.Response(bytes(row["data"]), content_type=row["content_type"], headers=headers)

    @app.post("/v1/object/sign/<bucket_id>/<path:name>")
    def sign(bucket_id: str, name: str) -> Any:
        expires_in = (flask.request.get_json(silent=True) or {}).get("expiresIn")
        if not str(expires_in).isdigit() or int(str(expires_in)) < 1:
            raise StorageError(400, "Invalid Input", "expiresIn must be a positive number of seconds")
        key = _name(name)
        store.get(bucket_id, key)
        now = int(time.time())
        token = jwt.encode({"url": f"{bucket_id}/{key}", "iat": now, "exp": now + int(str(expires_in))},
                           signing_key, algorithm="HS256")
        return {"signedURL": f"/object/sign/{bucket_id}/{key}?token={token}"}

    @app.get("/v1/object/sign/<bucket_id>/<path:name>")
    def signed_download(bucket_id: str, name: str) -> Any:
        key = _name(name)
        try:
            claims = jwt.decode(flask.request.args.get("token", ""), signing_key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError as exc:
            raise StorageError(400, "InvalidJWT", "jwt expired") from exc
        except jwt.InvalidTokenError as exc:
            raise StorageError(400, "InvalidJWT", "invalid signature") from exc
        if claims.get("url") != f"{bucket_id}/{key}":
            raise StorageError(400, "InvalidSignature", "The url do not match the signature")
        row = store.get(bucket_id, key)
        return flask.Response(bytes(row["data"]), content_type=row["content_type"],
                              headers={"ETag": f'"{row["id"]}"', "Cache-Control": "max-age=3600"})

    @app.post("/v1/object/<bucket_id>/<path:name>")
    @app.put("/v1/object/<bucket_id>/<path:name>")
    def upload(bucket_id: str, name: str) -> Any:
        request = flask.request
        part = request.files.get("file") if request.mimetype == "multipart/form-data" else None
        if part is not None:
            data, content_type = part.read(), part.content_type or "application/octet-stream"
            metadata = json.loads(request.form["metadata"]) if request.form.get("metadata") else None
            cache_control = request.form.get("cacheControl")
        else:
            data, content_type = request.get_data(), request.content_type or "application/octet-stream"
            metadata, cache_control = None, request.headers.get("cache-control")
        upsert = request.method == "POST" and request.headers.get("x-upsert", "").lower() == "true"
        object_id = store.put(bucket_id, _name(name), data, content_type=content_type, cache_control=cache_control,
                              metadata=metadata, mode="update" if request.method == "PUT" else
                              "upsert" if upsert else "create")
        return {"Key": f"{bucket_id}/{_name(name)}", "Id": str(object_id)}

    @app.delete("/v1/object/<bucket_id>")
    def remove(bucket_id: str) -> Any:
        prefixes = (flask.request.get_json(silent=True) or {}).get("prefixes") or []
        if not isinstance(prefixes, list):
            raise StorageError(400, "Invalid Input", "body/prefixes must be array")
        return flask.jsonify([_info_json(row) | {"name": row["name"], "bucket_id": bucket_id}
                              for row in store.remove(bucket_id, [str(p) for p in prefixes])])

    return app


def _error(exc: StorageError) -> Any:
    return {"statusCode": str(exc.status), "error": exc.error, "message": exc.message}, exc.status


def _name(name: str) -> str:
    parts = name.strip("/").split("/")
    if not name.strip("/") or any(part in ("", ".", "..") for part in parts):
        raise StorageError(400, "InvalidKey", f"Invalid key: {name}")
    return "/".join(parts)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _bucket_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "owner": "", "public": row["public"],
            "file_size_limit": row["file_size_limit"], "allowed_mime_types": row["allowed_mime_types"],
            "type": "STANDARD", "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"])}


def _info_json(row: dict[str, Any]) -> dict[str, Any]:
    size = row.get("size")
    if size is None and row.get("data") is not None:
        size = len(bytes(row["data"]))
    return {"id": str(row["id"]), "name": row["name"], "version": str(row["id"]), "bucket_id": row["bucket_id"],
            "size": size, "content_type": row["content_type"], "cache_control": row["cache_control"],
            "etag": f'"{row["id"]}"', "metadata": row["metadata"] or {}, "created_at": _iso(row["created_at"]),
            "last_modified": _iso(row["updated_at"]), "updated_at": _iso(row["updated_at"])}


class _Store:
    """Buckets and objects in Postgres, one short transaction per request."""

    def __init__(self, database_url: str) -> None:
        self.db = SchemaDatabase(database_url, ddl=_DDL, lock=_SCHEMA_LOCK,
                                 missing=lambda: StorageError(500, "InternalError",
                                                              "The storage emulator has no database_url configured"))

    def _tx(self) -> AbstractContextManager[psycopg.Connection[dict[str, Any]]]:
        return self.db.transaction()

    def _bucket(self, conn: psycopg.Connection[dict[str, Any]], bucket_id: str) -> dict[str, Any]:
        row = conn.execute(f"SELECT * FROM {SCHEMA}.buckets WHERE id = %s", (bucket_id,)).fetchone()
        if row is None:
            raise _bucket_missing()
        return row

    def create_bucket(self, bucket_id: str, body: dict[str, Any]) -> None:
        with self._tx() as conn:
            created = conn.execute(
                f"INSERT INTO {SCHEMA}.buckets (id, name, public, file_size_limit, allowed_mime_types) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id",
                (bucket_id, body.get("name") or bucket_id, bool(body.get("public")), body.get("file_size_limit"),
                 body.get("allowed_mime_types"))).fetchone()
        if created is None:
            raise StorageError(409, "Duplicate", "The resource already exists")

    def buckets(self) -> list[dict[str, Any]]:
        with self._tx() as conn:
            return conn.execute(f"SELECT * FROM {SCHEMA}.buckets ORDER BY id").fetchall()

    def bucket(self, bucket_id: str) -> dict[str, Any]:
        with self._tx() as conn:
            return self._bucket(conn, bucket_id)

    def update_bucket(self, bucket_id: str, body: dict[str, Any]) -> None:
        with self._tx() as conn:
            current = self._bucket(conn, bucket_id)
            conn.execute(f"UPDATE {SCHEMA}.buckets SET public = %s, file_size_limit = %s, allowed_mime_types = %s, "
                         "updated_at = now() WHERE id = %s",
                         (bool(body.get("public", current["public"])),
                          body.get("file_size_limit", current["file_size_limit"]),
                          body.get("allowed_mime_types", current["allowed_mime_types"]), bucket_id))

    def empty_bucket(self, bucket_id: str) -> None:
        with self._tx() as conn:
            self._bucket(conn, bucket_id)
            conn.execute(f"DELETE FROM {SCHEMA}.objects WHERE bucket_id = %s", (bucket_id,))

    def delete_bucket(self, bucket_id: str) -> None:
        with self._tx() as conn:
            self._bucket(conn, bucket_id)
            if conn.execute(f"SELECT 1 FROM {SCHEMA}.objects WHERE bucket_id = %s LIMIT 1", (bucket_id,)).fetchone():
                raise StorageError(409, "InvalidRequest", "The bucket you tried to delete is not empty")
            conn.execute(f"DELETE FROM {SCHEMA}.buckets WHERE id = %s", (bucket_id,))

    def put(self, bucket_id: str, name: str, data: bytes, *, content_type: str, cache_control: str | None,
            metadata: dict[str, Any] | None, mode: str) -> uuid.UUID:
        object_id = uuid.uuid4()
        with self._tx() as conn:
            bucket = self._bucket(conn, bucket_id)
            if bucket["file_size_limit"] is not None and len(data) > bucket["file_size_limit"]:
                raise StorageError(413, "Payload too large", "The object exceeded the maximum allowed size")
            allowed = bucket["allowed_mime_types"]
            if allowed and content_type.split(";")[0].strip() not in allowed:
                raise StorageError(415, "invalid_mime_type", f"mime type {content_type} is not supported")
            exists = conn.execute(f"SELECT 1 FROM {SCHEMA}.objects WHERE bucket_id = %s AND name = %s FOR UPDATE",
                                  (bucket_id, name)).fetchone()
            if exists and mode == "create":
                raise StorageError(409, "Duplicate", "The resource already exists")
            if not exists and mode == "update":
                raise _object_missing()
            conn.execute(
                f"INSERT INTO {SCHEMA}.objects (bucket_id, name, id, data, content_type, cache_control, metadata) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (bucket_id, name) DO UPDATE SET id = EXCLUDED.id, "
                "data = EXCLUDED.data, content_type = EXCLUDED.content_type, cache_control = EXCLUDED.cache_control, "
                "metadata = EXCLUDED.metadata, updated_at = now()",
                (bucket_id, name, object_id, data, content_type, cache_control,
                 Jsonb(metadata) if metadata is not None else None))
        return object_id

    def get(self, bucket_id: str, name: str) -> dict[str, Any]:
        with self._tx() as conn:
            self._bucket(conn, bucket_id)
            row = conn.execute(f"SELECT * FROM {SCHEMA}.objects WHERE bucket_id = %s AND name = %s",
                               (bucket_id, name)).fetchone()
        if row is None:
            raise _object_missing()
        return row

    def remove(self, bucket_id: str, names: list[str]) -> list[dict[str, Any]]:
        with self._tx() as conn:
            self._bucket(conn, bucket_id)
            return conn.execute(
                f"DELETE FROM {SCHEMA}.objects WHERE bucket_id = %s AND name = ANY(%s) "
                "RETURNING id, name, bucket_id, content_type, cache_control, metadata, created_at, updated_at, "
                "octet_length(data) AS size", (bucket_id, names)).fetchall()

    def list(self, bucket_id: str, *, prefix: str, limit: int, offset: int, search: str) -> list[dict[str, Any]]:
        """One folder level under `prefix`, as Storage lists it: sub-folders (id null) and files."""
        folder = prefix.strip("/")
        start = f"{folder}/" if folder else ""
        with self._tx() as conn:
            self._bucket(conn, bucket_id)
            rows = conn.execute(
                f"SELECT id, name, bucket_id, content_type, cache_control, metadata, created_at, updated_at, "
                f"octet_length(data) AS size FROM {SCHEMA}.objects WHERE bucket_id = %s AND starts_with(name, %s) "
                "ORDER BY name", (bucket_id, start)).fetchall()
        entries: dict[str, dict[str, Any]] = {}
        for row in rows:
            rest = row["name"][len(start):]
            head, _, tail = rest.partition("/")
            if search and search not in head:
                continue
            if tail:
                entries.setdefault(head, {"name": head, "id": None, "updated_at": None, "created_at": None,
                                          "last_accessed_at": None, "metadata": None})
            else:
                info = _info_json(row)
                entries[head] = {"name": head, "id": info["id"], "updated_at": info["updated_at"],
                                 "created_at": info["created_at"], "last_accessed_at": info["updated_at"],
                                 "metadata": {"size": info["size"], "mimetype": row["content_type"],
                                              "cacheControl": row["cache_control"], "eTag": info["etag"]}}
        return list(entries.values())[offset:offset + limit]
