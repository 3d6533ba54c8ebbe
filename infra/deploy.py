"""Deploy every function of the roster as its own Cloud Run service through the `google-cloud-run` Admin API.

All services run the same image (the repository's `Dockerfile`); its entry point starts the function that
`FUNCTION_TARGET` names, from `FUNCTION_SOURCE`. The services come from `infra/functions.toml` (through
`infra.roster`), so a function added there is deployed with no change here. Secrets are never passed as
values: each is a Secret Manager reference. QStash and PhonePe cannot present Google identities, so the
services are public and authenticate callers themselves (QStash signatures, webhook Authorization,
Supabase tokens).

`--dry-run` prints the planned services as JSON and calls nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from google.cloud import run_v2
from google.protobuf import duration_pb2

from infra.roster import FunctionSpec, load_roster

ENTRYPOINT = "/app/infra/entrypoint.sh"
"""The image's entry point (the Dockerfile's ENTRYPOINT), set explicitly as each service's command."""
CONTAINER_PORT = 8080


def secret_name(variable: str) -> str:
    """Secret Manager name of a variable: `QSTASH_TOKEN` → `qstash-token`."""
    return variable.lower().replace("_", "-")


def service_id(function: str) -> str:
    """Cloud Run service name of a function: `phonepe_webhook` → `muse-phonepe-webhook`."""
    return "muse-" + function.replace("_", "-")


def build_service(spec: FunctionSpec, *, image: str, env: dict[str, str],
                  service_account: str | None = None) -> run_v2.Service:
    """The Cloud Run service definition of one function (plain `env` minus its secrets, secrets by reference)."""
    variables = [run_v2.EnvVar(name="FUNCTION_TARGET", value=spec.name),
                 run_v2.EnvVar(name="FUNCTION_SOURCE", value=spec.source)]
    variables += [run_v2.EnvVar(name=k, value=v) for k, v in sorted(env.items())
                  if k not in spec.secrets and k not in ("FUNCTION_TARGET", "FUNCTION_SOURCE")]
    variables += [
        run_v2.EnvVar(name=name, value_source=run_v2.EnvVarSource(
            secret_key_ref=run_v2.SecretKeySelector(secret=secret_name(name), version="latest")))
        for name in spec.secrets
    ]
    container = run_v2.Container(
        image=image, command=[ENTRYPOINT], env=variables, ports=[run_v2.ContainerPort(container_port=CONTAINER_PORT)],
        resources=run_v2.ResourceRequirements(limits={"cpu": spec.cpu, "memory": spec.memory},
                                              cpu_idle=not spec.cpu_always_allocated, startup_cpu_boost=True))
    template = run_v2.RevisionTemplate(
        containers=[container],
        timeout=duration_pb2.Duration(seconds=spec.timeout_seconds),
        max_instance_request_concurrency=spec.concurrency,
        scaling=run_v2.RevisionScaling(min_instance_count=spec.min_instances, max_instance_count=spec.max_instances),
        execution_environment=run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2,
    )
    if service_account:
        template.service_account = service_account
    return run_v2.Service(template=template, ingress=run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL,
                          invoker_iam_disabled=True, labels={"app": "muse", "function": spec.name.replace("_", "-")})


def plan(*, project: str, region: str, image: str, env: dict[str, str],
         service_account: str | None = None) -> dict[str, run_v2.Service]:
    """Every roster function's service, named under `project`/`region`, keyed by function."""
    parent = f"projects/{project}/locations/{region}"
    services = {}
    for spec in load_roster().values():
        service = build_service(spec, image=image, env=env, service_account=service_account)
        service.name = f"{parent}/services/{service_id(spec.name)}"
        services[spec.name] = service
    return services


def describe(function: str, service: run_v2.Service) -> dict[str, Any]:
    """What the dry run shows of one planned service: settings, the function it selects, variable names and
    secret references (never a variable's value)."""
    [container] = service.template.containers
    return {
        "function": function,
        "service": service.name,
        "image": container.image,
        "command": list(container.command),
        "args": list(container.args),
        "selector": {v.name: v.value for v in container.env if v.name in ("FUNCTION_TARGET", "FUNCTION_SOURCE")},
        "env": [v.name for v in container.env if not v.value_source.secret_key_ref.secret],
        "secrets": {v.name: f"{v.value_source.secret_key_ref.secret}:{v.value_source.secret_key_ref.version}"
                    for v in container.env if v.value_source.secret_key_ref.secret},
        "cpu": container.resources.limits["cpu"],
        "memory": container.resources.limits["memory"],
        "concurrency": service.template.max_instance_request_concurrency,
        "timeout_seconds": service.template.timeout.seconds,
        "min_instances": service.template.scaling.min_instance_count,
        "max_instances": service.template.scaling.max_instance_count,
        "service_account": service.template.service_account or None,
    }


def deploy(*, project: str, region: str, image: str, env: dict[str, str], service_account: str | None,
           dry_run: bool, client: run_v2.ServicesClient | None = None) -> list[str]:
    """Create or update every service and return their names; `dry_run` prints the plan as JSON instead."""
    services = plan(project=project, region=region, image=image, env=env, service_account=service_account)
    if dry_run:
        print(json.dumps({"services": [describe(f, s) for f, s in services.items()]}, indent=1))
        return [s.name for s in services.values()]
    client = client or run_v2.ServicesClient()
    for service in services.values():
        operation = client.update_service(request=run_v2.UpdateServiceRequest(service=service, allow_missing=True))
        operation.result()
    return [s.name for s in services.values()]


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines (blank lines and `#` comments skipped)."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        if raw.strip() and not raw.lstrip().startswith("#") and "=" in raw:
            key, _, value = raw.partition("=")
            env[key.strip()] = value.strip()
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True)
    parser.add_argument("--region", default="asia-south1")
    parser.add_argument("--image", required=True, help="e.g. asia-south1-docker.pkg.dev/P/muse/muse:<sha>")
    parser.add_argument("--env-file", type=Path, help="KEY=VALUE lines of non-secret settings")
    parser.add_argument("--service-account")
    parser.add_argument("--dry-run", action="store_true", help="print the planned services as JSON, call nothing")
    args = parser.parse_args(argv)
    env = read_env_file(args.env_file) if args.env_file else {}
    deploy(project=args.project, region=args.region, image=args.image, env=env,
           service_account=args.service_account, dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
