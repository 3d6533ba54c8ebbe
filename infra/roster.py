"""The roster of functions: `infra/functions.toml` is the one list of what Muse runs.

Each `[functions.<name>]` table is one function, whose code is `functions/<name>/main.py` with the
functions-framework entry point `<name>` in it. The local stack (which paths it serves), the process
runner of the end-to-end tests and benchmarks, `infra.deploy` (one Cloud Run service each) and the tests
all read this roster, so adding a function is adding its directory and its heading here: `[defaults]`
fills in every setting an entry leaves out.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
ROSTER_FILE = Path(__file__).with_name("functions.toml")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True)
class FunctionSpec:
    """One function and its Cloud Run settings."""

    name: str
    cpu: str
    memory: str
    timeout_seconds: int
    concurrency: int
    min_instances: int
    max_instances: int
    secrets: tuple[str, ...]
    """Settings read from Secret Manager rather than passed as plain environment variables."""
    local_path: str
    """Where the local stack (`make dev`) serves the function; `/<name>` unless the roster says otherwise."""
    cpu_always_allocated: bool
    """CPU outside requests (Cloud Run `--no-cpu-throttling`): for work that outlives its request (a chat turn
    whose client disconnected)."""

    @property
    def source(self) -> str:
        """The function's source file relative to the repository (and to the image's working directory)."""
        return f"functions/{self.name}/main.py"


_SETTINGS = {f.name for f in fields(FunctionSpec)} - {"name"}


def load_roster(path: Path = ROSTER_FILE) -> dict[str, FunctionSpec]:
    """Every function of the roster in file order, defaults applied; a malformed entry raises ValueError."""
    raw = tomllib.loads(path.read_text())
    defaults: dict[str, Any] = raw.get("defaults", {})
    roster: dict[str, FunctionSpec] = {}
    for name, overrides in raw.get("functions", {}).items():
        if not _NAME.match(name):
            raise ValueError(f"{path}: function name {name!r} must be a lower-case identifier (its directory name).")
        settings = {"local_path": f"/{name}", **defaults, **(overrides or {})}
        unknown, missing = settings.keys() - _SETTINGS, _SETTINGS - settings.keys()
        if unknown or missing:
            raise ValueError(f"{path}: function {name!r} has unknown settings {sorted(unknown)} "
                             f"or lacks {sorted(missing)}.")
        roster[name] = _spec(name, settings)
    if not roster:
        raise ValueError(f"{path} lists no [functions.<name>] table.")
    paths = [spec.local_path for spec in roster.values()]
    if len(set(paths)) != len(paths):
        raise ValueError(f"{path}: two functions share a local_path ({sorted(paths)}).")
    return roster


def function_names(path: Path = ROSTER_FILE) -> tuple[str, ...]:
    """The names of the roster's functions, in file order."""
    return tuple(load_roster(path))


def _spec(name: str, settings: dict[str, Any]) -> FunctionSpec:
    if not isinstance(settings["secrets"], list) or not str(settings["local_path"]).startswith("/"):
        raise ValueError(f"function {name!r}: secrets must be a list and local_path must start with '/'.")
    if not isinstance(settings["cpu_always_allocated"], bool):
        raise ValueError(f"function {name!r}: cpu_always_allocated must be true or false.")
    try:
        return FunctionSpec(
            name=name, cpu=str(settings["cpu"]), memory=str(settings["memory"]),
            timeout_seconds=int(settings["timeout_seconds"]), concurrency=int(settings["concurrency"]),
            min_instances=int(settings["min_instances"]), max_instances=int(settings["max_instances"]),
            secrets=tuple(str(s) for s in settings["secrets"]), local_path=str(settings["local_path"]),
            cpu_always_allocated=settings["cpu_always_allocated"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"function {name!r}: {exc}") from exc
