"""`infra/deploy.py` through the official google-cloud-run SDK against a local Admin API endpoint."""

from __future__ import annotations

import json
from typing import Any

import flask
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

from infra.deploy import ENTRYPOINT, deploy
from infra.local.serve import serve_in_thread
from infra.roster import load_roster


def _admin_api(received: list[dict[str, Any]]) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.patch("/v2/projects/<project>/locations/<region>/services/<service>")
    def upsert(project: str, region: str, service: str) -> Any:
        body = flask.request.get_json()
        received.append({"service": service, "query": dict(flask.request.args), "body": body})
        return {"name": f"projects/{project}/locations/{region}/operations/op-{service}", "done": True,
                "response": {"@type": "type.googleapis.com/google.cloud.run.v2.Service", **body,
                             "name": f"projects/{project}/locations/{region}/services/{service}"}}

    return app


def test_every_function_is_upserted_as_its_own_service() -> None:
    received: list[dict[str, Any]] = []
    server = serve_in_thread(_admin_api(received))
    try:
        client = run_v2.ServicesClient(credentials=AnonymousCredentials(), transport="rest",
                                       client_options=ClientOptions(api_endpoint=server.url))
        names = deploy(project="p", region="asia-south1", image="img:1", env={"MUSE_ENV": "cloud"},
                       service_account=None, dry_run=False, client=client)
    finally:
        server.stop()
    assert len(names) == len(load_roster()) == len(received)
    assert {r["service"] for r in received} == {"muse-" + name.replace("_", "-") for name in load_roster()}
    assert all(r["query"].get("allowMissing") == "true" for r in received)
    by_name = {r["service"]: r["body"] for r in received}
    webhook = by_name["muse-phonepe-webhook"]["template"]
    env = {e["name"]: e for e in webhook["containers"][0]["env"]}
    assert env["FUNCTION_TARGET"]["value"] == "phonepe_webhook"
    assert env["FUNCTION_SOURCE"]["value"] == "functions/phonepe_webhook/main.py"
    assert webhook["containers"][0]["command"] == [ENTRYPOINT]
    assert env["QSTASH_CURRENT_SIGNING_KEY"]["valueSource"]["secretKeyRef"]["secret"] == "qstash-current-signing-key"
    assert "value" not in env["DATABASE_URL"], "secrets must come from Secret Manager, never inline"
    assert webhook["scaling"]["minInstanceCount"] == 1
    assert json.dumps(by_name["muse-content"]).count('"timeout": "900s"') == 1
