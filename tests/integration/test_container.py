"""From a checkout to Cloud Run: the deploy plan of every roster function, and the image's entry point serving one.

Docker is not needed: the dry run is the deploy command itself, and the entry point is run with the same
command line and environment the planned service gives the container (paths under `/app` mapped to the
repository).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.deploy import ENTRYPOINT, secret_name, service_id
from infra.local.processes import free_port, wait_for_port
from infra.roster import REPO_ROOT, load_roster

SECRET_VALUE = "do-not-print-this-value"
IMAGE = "asia-south1-docker.pkg.dev/p/muse/muse:abc123"


def _dockerfile() -> dict[str, list[str]]:
    """Dockerfile instructions (continuation lines joined), keyed by instruction."""
    text = re.sub(r"\\\n\s*", " ", (REPO_ROOT / "Dockerfile").read_text())
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.setdefault(keyword.upper(), []).append(rest.strip())
    return instructions


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """`python -m infra.deploy --dry-run` with an env file that (wrongly) carries a secret's value."""
    env_file = tmp_path_factory.mktemp("deploy") / "cloud.env"
    env_file.write_text(f"# plain settings\nMUSE_ENV=cloud\nGEMINI_API_KEY={SECRET_VALUE}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    done = subprocess.run(
        [sys.executable, "-m", "infra.deploy", "--project", "muse-prod", "--region", "asia-south1", "--image", IMAGE,
         "--env-file", str(env_file), "--dry-run"],
        cwd=REPO_ROOT, env={**env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert SECRET_VALUE not in done.stdout + done.stderr
    return {service["function"]: service for service in json.loads(done.stdout)["services"]}


def test_dry_run_plans_every_roster_function(plan: dict[str, dict[str, Any]]) -> None:
    roster = load_roster()
    assert list(plan) == list(roster)
    for name, spec in roster.items():
        service = plan[name]
        assert service["service"] == f"projects/muse-prod/locations/asia-south1/services/{service_id(name)}"
        assert service["image"] == IMAGE
        assert (service["command"], service["args"]) == ([ENTRYPOINT], [])
        assert (service["cpu"], service["memory"]) == (spec.cpu, spec.memory)
        assert (service["concurrency"], service["timeout_seconds"]) == (spec.concurrency, spec.timeout_seconds)
        assert (service["min_instances"], service["max_instances"]) == (spec.min_instances, spec.max_instances)
        assert service["selector"] == {"FUNCTION_TARGET": name, "FUNCTION_SOURCE": f"functions/{name}/main.py"}
        assert service["env"] == ["FUNCTION_TARGET", "FUNCTION_SOURCE", "MUSE_ENV"]
        assert service["secrets"] == {variable: f"{secret_name(variable)}:latest" for variable in spec.secrets}
        assert "GEMINI_API_KEY" not in service["env"] and "GEMINI_API_KEY" in service["secrets"]


def test_dockerfile_builds_the_one_image() -> None:
    dockerfile = _dockerfile()
    assert dockerfile["FROM"] == ["python:3.11-slim"]
    assert dockerfile["WORKDIR"] == ["/app"] and "PYTHONPATH=/app" in " ".join(dockerfile["ENV"])
    assert any("pip install -r requirements.txt" in run for run in dockerfile["RUN"])
    copied = {copy.split()[0].rstrip("/") for copy in dockerfile["COPY"]}
    assert copied == {"requirements.txt", "shared", "functions", "infra", "supabase"}
    assert json.loads(dockerfile["ENTRYPOINT"][0]) == [ENTRYPOINT]
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".muse", ".git"} <= set(ignored)


def _container_env(service: dict[str, Any], port: int) -> dict[str, str]:
    """What Cloud Run gives the container: the planned selector, placeholders for the rest, and PORT."""
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO_ROOT),
           "HOME": os.environ.get("HOME", "/tmp"), "PORT": str(port), **service["selector"]}
    env.update({variable: f"placeholder-{variable.lower()}" for variable in service["secrets"]})
    if "MUSE_ENCRYPTION_KEYS" in env:
        env["MUSE_ENCRYPTION_KEYS"] = "placeholder:" + base64.b64encode(bytes(32)).decode()
    env.update(MUSE_ENV="cloud", UPSTASH_REDIS_REST_URL="http://127.0.0.1:9", PHONEPE_CLIENT_ID="client",
               PHONEPE_WEBHOOK_USERNAME="phonepe")
    return env


@pytest.fixture
def webhook_container(plan: dict[str, dict[str, Any]]) -> Iterator[str]:
    """The Dockerfile's ENTRYPOINT run for the planned `phonepe_webhook` service; yields its URL."""
    [entrypoint] = json.loads(_dockerfile()["ENTRYPOINT"][0])
    port = free_port()
    proc = subprocess.Popen([str(REPO_ROOT / entrypoint.removeprefix("/app/"))], cwd=REPO_ROOT,
                            env=_container_env(plan["phonepe_webhook"], port), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc=proc, timeout=60)
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        assert proc.stderr is not None
        proc.stderr.close()


def test_entrypoint_serves_the_planned_function(webhook_container: str) -> None:
    wrong = httpx.post(webhook_container, content=b"{}", headers={"Authorization": "not-the-hash"}, timeout=10)
    assert wrong.status_code == 401, wrong.text
    get = httpx.get(webhook_container, timeout=10)
    assert get.status_code == 405 and get.headers["Allow"] == "POST"
    assert get.headers["Server"].startswith("gunicorn"), "the production server, as on Cloud Run"


def test_entrypoint_refuses_to_start_without_a_target() -> None:
    done = subprocess.run([str(REPO_ROOT / "infra" / "entrypoint.sh")], cwd=REPO_ROOT, env={"PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 64 and "FUNCTION_TARGET" in done.stderr
