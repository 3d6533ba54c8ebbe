"""Export a workspace's data as one archive, or erase it; both owner-only and audited.

Export: one zip built in a temporary file (nothing held in memory but one row at a time): a JSON
array per table (`tables/<name>.json`, every table with a `workspace_id` column, read in one
read-only snapshot), the workspace itself (`workspace.json`), every stored original under
`files/<path>` (Supabase Storage), and `manifest.json` with the counts. LangGraph checkpoints are the
runtime's internal state (their content is in the campaigns, events, artifacts and messages) and are
not exported.

Erase: the database part in one transaction (campaigns, their events, artifacts, decisions, usage and
outbox rows, checkpoints of every campaign and conversation thread, conversations and messages,
knowledge with its chunks and embeddings, memory, brand kit), with one audit entry of who asked;
payments, invoices and the audit log stay. Then the stored originals and the workspace's cache keys
go; both are idempotent, so repeating the DELETE after a failure there finishes the job.
"""

from __future__ import annotations

import json
import logging
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from pydantic import BaseModel

from shared.auth import Principal, choose_workspace
from shared.db import audit
from shared.db import workspace_data as db
from shared.db.campaigns import memberships
from shared.db.pool import Pool, as_service, as_user
from shared.errors import Forbidden, InvalidRequest, MuseError, NotFound, UpstreamUnavailable

log = logging.getLogger("muse.privacy")

EXPORT_FORMAT = "muse-workspace-export/1"


class StoredFiles(Protocol):
    """The object store of knowledge originals (Supabase Storage), as export and erasure use it."""

    def list_under(self, folder: str) -> list[str]: ...

    def get(self, path: str) -> bytes: ...

    def remove_under(self, folder: str) -> int: ...


class WorkspaceCache(Protocol):
    """The cache (Upstash Redis) as erasure uses it."""

    def erase_workspace(self, workspace_id: str) -> int: ...


class ExportManifest(BaseModel):
    """`manifest.json` of an export archive."""

    format: str = EXPORT_FORMAT
    workspace_id: str
    workspace_slug: str
    exported_at: datetime
    exported_by: str
    tables: dict[str, int]
    """Table → rows exported (`tables/<table>.json`)."""
    files: int
    """Stored originals exported (`files/<path>`)."""
    file_bytes: int
    not_included: list[str] = ["LangGraph checkpoints (internal runtime state; their content is in the tables)"]


class ErasureReport(BaseModel):
    """`DELETE /api/v1/workspace/data`: what was erased and what was kept."""

    workspace_id: str
    erased: dict[str, int]
    """Table → rows deleted (checkpoint tables included); zero counts are left out."""
    storage_objects_removed: int
    cache_keys_removed: int
    kept: list[str]
    """Tables whose rows stay (payments and invoices by law, the audit log, membership)."""
    audit_entry_id: int | None
    """The audit entry recording this request (None: a replayed `Idempotency-Key` already has one)."""
    steps_in_flight: int
    """Campaign steps that were running: they can no longer commit, but memory their nodes learn before
    they stop may land after this erasure; when this is above 0, repeat the DELETE once `MUSE_LEASE_SECONDS`
    have passed."""


@dataclass
class ExportArchive:
    """A built archive: an open temporary file positioned at its start, and its manifest."""

    file: IO[bytes]
    filename: str
    manifest: ExportManifest


@dataclass
class WorkspaceData:
    """Export and erasure of one workspace's data, for the API function."""

    pool: Pool
    files: StoredFiles
    cache: WorkspaceCache

    def _owned(self, principal: Principal, requested: str | None, what: str) -> str:
        """The caller's workspace, which they must own: these operations concern all of its data."""
        with as_user(self.pool, principal.claims) as conn:
            workspace_id = choose_workspace(memberships(conn), principal, requested)
            role = db.member_role(conn, workspace_id)
        if role != "owner":
            raise Forbidden(f"Only an owner of workspace {workspace_id} may {what}; your role is {role!r}.")
        return workspace_id

    def export(self, principal: Principal, requested: str | None) -> ExportArchive:
        """Build the archive of everything the workspace stored, recording the request in the audit log first."""
        workspace_id = self._owned(principal, requested, "export its data")
        with as_service(self.pool) as conn:
            audit.record(conn, workspace_id=workspace_id, actor=str(principal.user_id),
                         action="workspace.export_requested", target_type="workspace", target_id=workspace_id)
        out = tempfile.TemporaryFile()
        try:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                manifest = self._write(archive, workspace_id, str(principal.user_id))
                archive.writestr("manifest.json", manifest.model_dump_json(indent=2))
            out.seek(0)
        except BaseException:
            out.close()
            raise
        stamp = manifest.exported_at.strftime("%Y%m%dT%H%M%SZ")
        return ExportArchive(file=out, filename=f"muse-export-{manifest.workspace_slug}-{stamp}.zip",
                             manifest=manifest)

    def _write(self, archive: zipfile.ZipFile, workspace_id: str, actor: str) -> ExportManifest:
        counts: dict[str, int] = {}
        with as_service(self.pool) as conn:
            db.begin_snapshot(conn)
            workspace = db.workspace_row(conn, workspace_id)
            if workspace is None:
                raise NotFound(f"Workspace {workspace_id} does not exist.")
            archive.writestr("workspace.json", _dumps(workspace))
            for table, generated in db.workspace_tables(conn).items():
                with archive.open(f"tables/{table}.json", "w") as member:
                    counts[table] = _write_array(member, db.table_rows(conn, table, workspace_id,
                                                                       leave_out=generated))
        paths = self.files.list_under(f"{workspace_id}/")
        total = 0
        for path in paths:
            data = self.files.get(path)
            total += len(data)
            archive.writestr(f"files/{path}", data)
        return ExportManifest(workspace_id=workspace_id, workspace_slug=workspace["slug"],
                              exported_at=datetime.now(UTC), exported_by=actor, tables=counts, files=len(paths),
                              file_bytes=total)

    def erase(self, principal: Principal, requested: str | None, *, confirm: str | None,
              idempotency_key: str | None) -> ErasureReport:
        """Erase the workspace's data (see the module docstring); `confirm` must repeat the workspace id."""
        workspace_id = self._owned(principal, requested, "erase its data")
        if confirm != workspace_id:
            shown = "nothing" if confirm is None else repr(confirm)
            raise InvalidRequest(
                f"Erasing workspace data is irreversible: send `confirm={workspace_id}` (the workspace's id) "
                f"to confirm; got {shown}.", details={"field": "confirm", "value": confirm, "expected": workspace_id})
        with as_service(self.pool) as conn:
            done = db.erase(conn, workspace_id)
            erased = {table: n for table, n in done.rows.items() if n}
            entry = audit.record(conn, workspace_id=workspace_id, actor=str(principal.user_id),
                                 action="workspace.erase_requested", target_type="workspace", target_id=workspace_id,
                                 details={"rows": erased, "threads": len(done.threads)},
                                 key=None if idempotency_key is None else f"erase:{idempotency_key}")
        try:
            removed_files = self.files.remove_under(f"{workspace_id}/")
            removed_keys = self.cache.erase_workspace(workspace_id)
        except MuseError as exc:
            raise UpstreamUnavailable(f"The workspace's database rows are erased, but removing its stored files and "
                                      f"cached keys failed ({exc.message}); repeat the DELETE to finish.") from exc
        except Exception as exc:
            raise UpstreamUnavailable(f"The workspace's database rows are erased, but removing its stored files and "
                                      f"cached keys failed ({exc}); repeat the DELETE to finish.") from exc
        log.info("workspace %s erased: %s rows, %s files, %s cache keys", workspace_id, sum(erased.values()),
                 removed_files, removed_keys)
        return ErasureReport(workspace_id=workspace_id, erased=erased, storage_objects_removed=removed_files,
                             cache_keys_removed=removed_keys, kept=sorted(db.RETAINED_TABLES),
                             audit_entry_id=entry, steps_in_flight=done.running)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _write_array(member: IO[bytes], rows: Iterable[dict[str, Any]]) -> int:
    """Write `rows` as one JSON array, a row at a time; how many there were."""
    count = 0
    member.write(b"[")
    for row in rows:
        member.write((b",\n" if count else b"\n") + _dumps(row).encode())
        count += 1
    member.write(b"\n]\n" if count else b"]\n")
    return count
