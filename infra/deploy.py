"""Deploy every function as its own Cloud Run service through the `google-cloud-run` Admin API.

All services run the same image; `FUNCTION_TARGET` and `FUNCTION_SOURCE` select the function.
QStash and PhonePe cannot present Google identities, so the services are public and authenticate
callers themselves (QStash signatures, webhook Authorization, Supabase tokens).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from google.cloud import run_v2
from google.protobuf import duration_pb2

SPEC_FILE = Path(__file__).with_name("functions.toml")


def load_spec(path: Path = SPEC_FILE) -> dict[str, dict[str, Any]]:
    """Each function's settings, defaults applied."""
    raw = tomllib.loads(path.read_text())
    defaults = raw["defaults"]
    return {name: {**defaults, **(overrides or {})} for name, overrides in raw["functions"].items()}


def secret_name(variable: str) -> str:
    """Secret Manager name of a variable: `QSTASH_TOKEN` → `qstash-token`."""
    return variable.lower().replace("_", "-")


def service_id(function: str) -> str:
    """Cloud Run service name of a function: `phonepe_webhook` → `muse-phonepe-webhook`."""
    return "muse-" + function.replace("_", "-")


def build_service(function: str, spec: dict[str, Any], *, image: str, env: dict[str, str],
                  service_account: str | None = None) -> run_v2.Service:
    """The Cloud Run service definition of one function."""
    variables = [run_v2.EnvVar(name="FUNCTION_TARGET", value=function),
                 run_v2.EnvVar(name="FUNCTION_SOURCE", value=f"functions/{function}/main.py")]
    variables += [run_v2.EnvVar(name=k, value=v) for k, v in sorted(env.items()) if k not in spec["secrets"]]
    variables += [
        run_v2.EnvVar(name=name, value_source=run_v2.EnvVarSource(
            secret_key_ref=run_v2.SecretKeySelector(secret=secret_name(name), version="latest")))
        for name in spec["secrets"]
    ]
    container = run_v2.Container(
        image=image, env=variables, ports=[run_v2.ContainerPort(container_port=8080)],
        resources=run_v2.ResourceRequirements(limits={"cpu": spec["cpu"], "memory": spec["memory"]},
                                              cpu_idle=True, startup_cpu_boost=True))
    template = run_v2.RevisionTemplate(
        containers=[container],
        timeout=duration_pb2.Duration(seconds=int(spec["timeout_seconds"])),
        max_instance_request_concurrency=int(spec["concurrency"]),
        scaling=run_v2.RevisionScaling(min_instance_count=int(spec["min_instances"]),
                                       max_instance_count=int(spec["max_instances"])),
        execution_environment=run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2,
    )
    if service_account:
        template.service_account = service_account
    return run_v2.Service(template=template, ingress=run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL,
                          invoker_iam_disabled=True, labels={"app": "muse", "function": function.replace("_", "-")})


def deploy(*, project: str, region: str, image: str, env: dict[str, str], service_account: str | None,
           dry_run: bool, client: run_v2.ServicesClient | None = None) -> list[str]:
    """Create or update every service; returns their names (or prints them when `dry_run`)."""
    parent = f"projects/{project}/locations/{region}"
    names = []
    for function, spec in load_spec().items():
        service = build_service(function, spec, image=image, env=env, service_account=service_account)
        service.name = f"{parent}/services/{service_id(function)}"
        names.append(service.name)
        if dry_run:
            print(json.dumps(run_v2.Service.to_dict(service), indent=1, default=str))
            continue
        client = client or run_v2.ServicesClient()
        operation = client.update_service(request=run_v2.UpdateServiceRequest(service=service, allow_missing=True))
        operation.result()
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", default="asia-south1")
    parser.add_argument("--image", required=True, help="e.g. asia-south1-docker.pkg.dev/P/muse/muse:<sha>")
    parser.add_argument("--env-file", type=Path, help="KEY=VALUE lines of non-secret settings")
    parser.add_argument("--service-account")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    env: dict[str, str] = {}
    if args.env_file:
        for raw in args.env_file.read_text().splitlines():
            if raw.strip() and not raw.lstrip().startswith("#") and "=" in raw:
                key, _, value = raw.partition("=")
                env[key.strip()] = value.strip()
    deploy(project=args.project, region=args.region, image=args.image, env=env,
           service_account=args.service_account, dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
