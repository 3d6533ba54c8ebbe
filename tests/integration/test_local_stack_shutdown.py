"""Nothing the local stack or a test session starts outlives it: no postgres, no redis-server.

Each test runs the real thing in a subprocess (`python -m infra.local.stack --emulators-only`, as the
end-to-end tests start it, or a pytest session using the session Postgres), ends it the way a person or
a runner would, and then scans /proc for database servers whose command line or working directory lies
under the test's temporary directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.embedded import stop_leftovers
from infra.local.processes import clean_environ, free_port, wait_for_port
from infra.roster import REPO_ROOT


def _servers_under(root: Path) -> list[tuple[int, str, str]]:
    """(pid, command, command line) of each postgres or redis-server whose command line or working directory
    names `root`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "comm").read_text().strip()
            if command not in ("postgres", "redis-server"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(root) in cmdline or cwd == str(root) or cwd.startswith(f"{root}/"):
            found.append((int(entry.name), command, cmdline))
    return found


def _commands(root: Path) -> set[str]:
    return {command for _, command, _ in _servers_under(root)}


def _settle(root: Path, timeout: float = 10.0) -> list[tuple[int, str, str]]:
    """The servers still under `root` once they had `timeout` seconds to finish exiting."""
    deadline = time.monotonic() + timeout
    while (left := _servers_under(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _stack_command(data_dir: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "infra.local.stack", "--emulators-only", "--port", str(port),
            "--data-dir", str(data_dir), "--no-seed", *extra]


def _start_stack(data_dir: Path) -> subprocess.Popen[bytes]:
    port = free_port()
    log_path = data_dir.parent / f"stack-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(_stack_command(data_dir, port), cwd=REPO_ROOT, env=clean_environ(),
                                stdout=log, stderr=log)
    try:
        wait_for_port(port, proc=proc, timeout=120)
    except BaseException as exc:
        proc.kill()
        tail = log_path.read_text(errors="replace")[-4000:]
        raise AssertionError(f"the stack did not start ({exc}); the end of its log:\n{tail}") from exc
    return proc


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """The stack's data dir; whatever a failing test leaves running under `tmp_path` is stopped afterwards."""
    path = tmp_path / "stack"
    path.mkdir()
    yield path
    stop_leftovers(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_stack_stops_its_databases(tmp_path: Path, data_dir: Path, signum: int) -> None:
    proc = _start_stack(data_dir)
    try:
        assert _commands(tmp_path) == {"postgres", "redis-server"}
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 0
        assert _settle(tmp_path) == []
    finally:
        proc.kill()


def test_a_stack_left_by_a_killed_run_stops_with_the_next_one(tmp_path: Path, data_dir: Path) -> None:
    """A SIGKILLed stack leaves its detached servers; the next stack on the data dir adopts them, stops them."""
    killed = _start_stack(data_dir)
    killed.kill()
    killed.wait(timeout=10)
    assert _commands(tmp_path) == {"postgres", "redis-server"}
    proc = _start_stack(data_dir)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert _settle(tmp_path) == []
    finally:
        proc.kill()


def test_a_stack_whose_parent_is_killed_stops_too(tmp_path: Path, data_dir: Path) -> None:
    """`--exit-with-parent` (what the end-to-end tests and `make demo` use): a runner killed outright."""
    port = free_port()
    starter = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen({_stack_command(data_dir, port, "--exit-with-parent")!r},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", starter], cwd=REPO_ROOT, env=clean_environ(),
                              stdout=subprocess.PIPE)
    assert parent.stdout is not None
    stack_pid = int(parent.stdout.readline())
    try:
        wait_for_port(port, timeout=120)
        assert _commands(tmp_path) == {"postgres", "redis-server"}
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 60
        while Path(f"/proc/{stack_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{stack_pid}").exists(), "the stack outlived its parent"
        assert _settle(tmp_path) == []
    finally:
        parent.kill()
        parent.stdout.close()
        if Path(f"/proc/{stack_pid}").exists():
            os.kill(stack_pid, signal.SIGKILL)


_SESSION_TEST = """
import time
from pathlib import Path

import psycopg


def test_holds_the_session_postgres(postgres_server_dsn):
    with psycopg.connect(postgres_server_dsn) as conn:
        conn.execute("SELECT 1")
    Path("{marker}").write_text("running")
    time.sleep({sleep})
"""


def _interruptible() -> None:
    """Give the child Ctrl-C's default action: a runner that starts us in the background (`cmd &`) ignores
    SIGINT, and a Python started with SIGINT ignored never turns it into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("interrupt", [None, signal.SIGTERM, signal.SIGINT])
def test_the_session_postgres_stops_with_the_session(request: pytest.FixtureRequest, tmp_path: Path,
                                                     interrupt: int | None) -> None:
    """`tests/conftest.py`'s session server stops when pytest exits, also when pytest is interrupted."""
    marker = tmp_path / "inside"
    test_file = tmp_path / "test_inner_session.py"
    test_file.write_text(_SESSION_TEST.format(marker=marker, sleep=0 if interrupt is None else 120))
    request.addfinalizer(lambda: stop_leftovers(tmp_path))
    env = {k: v for k, v in clean_environ().items() if k != "DATABASE_URL"}
    env["TMPDIR"] = str(tmp_path)
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "-c", str(REPO_ROOT / "pyproject.toml"), "--rootdir", str(REPO_ROOT), str(test_file)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_interruptible)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and session.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), session.communicate(timeout=30)[0].decode()
        if interrupt is not None:
            assert _commands(tmp_path) == {"postgres"}
            session.send_signal(interrupt)
        output = session.communicate(timeout=120)[0].decode()
        assert session.returncode == (0 if interrupt is None else 2), output
        assert _settle(tmp_path) == []
    finally:
        session.kill()
        session.communicate(timeout=30)
