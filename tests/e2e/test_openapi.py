"""The admin API's OpenAPI document, `GET /admin/v1/openapi.json`.

The document is generated from the code (utoipa). These tests check that it
is a valid OpenAPI 3.1 document, that it sits behind the admin credential
like every admin route, and then let schemathesis loose on a real gateway
with it: every documented operation, with generated valid and invalid input,
must never answer 5xx and must answer exactly what the document says (status
codes, content types, response schemas). An operation annotated later is
covered here without a change to this file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis

from e2e_support import Gateway, Spawner, assert_openai_error

# What is documented so far; the document may hold more (the key and usage
# routes once their handlers are annotated), never less.
DOCUMENTED = {
    ("get", "/openapi.json"),
    ("get", "/audit"),
    ("get", "/provider-credentials"),
    ("post", "/provider-credentials"),
    ("get", "/provider-credentials/{name}"),
    ("put", "/provider-credentials/{name}"),
    ("delete", "/provider-credentials/{name}"),
    ("get", "/organisations"),
    ("post", "/organisations"),
    ("get", "/organisations/{id}"),
    ("get", "/projects"),
    ("post", "/projects"),
    ("get", "/projects/{id}"),
    ("patch", "/projects/{id}"),
    ("patch", "/organisations/{id}"),
    ("post", "/organisations/{id}/balance"),
    ("put", "/organisations/{id}/owners/{owner}/budget"),
    ("delete", "/organisations/{id}/owners/{owner}/budget"),
    ("get", "/organisations/{id}/owner-budgets"),
    ("get", "/admin-credentials"),
    ("post", "/admin-credentials"),
    ("get", "/admin-credentials/{id}"),
    ("post", "/admin-credentials/{id}/revoke"),
    ("get", "/oauth-clients"),
    ("post", "/oauth-clients"),
    ("get", "/keys"),
    ("post", "/keys"),
    ("post", "/keys/revoke"),
    ("get", "/keys/{id}"),
    ("patch", "/keys/{id}"),
    ("delete", "/keys/{id}"),
    ("post", "/keys/{id}/revoke"),
    ("post", "/keys/{id}/rotate"),
    ("post", "/keys/{id}/suspend"),
    ("post", "/keys/{id}/resume"),
    ("post", "/keys/lookup"),
    ("get", "/service-accounts"),
    ("post", "/service-accounts"),
    ("get", "/service-accounts/{id}/keys"),
    ("post", "/service-accounts/{id}/keys"),
    ("post", "/service-accounts/{id}/keys/{kid}/disable"),
    ("post", "/service-accounts/{id}/keys/{kid}/enable"),
    ("get", "/trusted-issuers"),
    ("post", "/trusted-issuers"),
    ("post", "/trusted-issuers/{id}/disable"),
    ("post", "/trusted-issuers/{id}/enable"),
    ("get", "/usage"),
    ("get", "/usage/events"),
}

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# The whole schemathesis invocation but the URL. Test cases per operation
# and phase: enough to find the boundaries, few enough that one run stays
# well under a minute on a debug build; derandomized, one worker, so a run
# is reproducible. The admin key comes from the environment, never the
# command line. 413 (a generated body over the limit) refuses invalid data
# as well as 400 does; the other statuses are schemathesis' defaults.
SCHEMATHESIS_CONFIG = """
seed = 20261128
workers = 1
request-timeout = 10
headers = { Authorization = "Bearer ${KEYGATE_E2E_ADMIN_KEY}" }

[checks]
enabled = true

[generation]
max-examples = 40
deterministic = true

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

# A key's policy fields are checked by the handler in ways a JSON Schema
# pattern cannot state exactly: model globs (`{a,b}-*` is one, `[` is not),
# IPv4 and IPv6 networks, durations or future times, the configured
# environments. For the key operations, "valid per schema => accepted" and
# "invalid per schema => refused" are therefore not asserted; every other
# check (no 5xx, documented statuses, content types and response schemas,
# authentication) still runs on them.
# And DELETE /keys/{id} revokes, it does not erase:
# a revoked key stays readable (status `revoked`) for audits, so the
# "deleted resource still available" check does not apply. Nor does "created
# resource not found": PATCH /keys/{id} naming a project that does not exist
# (or lies outside the caller's scope) answers 404 about that project, as
# tenancy answers every id it will not reveal, while the key itself is there.
[[operations]]
include-tag = "keys"
checks.positive_data_acceptance.enabled = false
checks.negative_data_rejection.enabled = false
checks.use_after_free.enabled = false
checks.ensure_resource_availability.enabled = false

# OAuth clients, service accounts and trust rules are defined by the same
# key definition (plus public keys, issuer URLs, JWKS and durations the
# handler parses), checked the same way.
[[operations]]
include-tag = "oauth-clients"
checks.positive_data_acceptance.enabled = false
checks.negative_data_rejection.enabled = false

[[operations]]
include-tag = "service-accounts"
checks.positive_data_acceptance.enabled = false
checks.negative_data_rejection.enabled = false

[[operations]]
include-tag = "trusted-issuers"
checks.positive_data_acceptance.enabled = false
checks.negative_data_rejection.enabled = false
"""


def fetch_document(gw: Gateway) -> dict[str, Any]:
    r = gw.admin.get("/admin/v1/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


def operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m, path) for path, item in doc["paths"].items() for m in METHODS if m in item}


def test_the_document_is_valid_openapi_3_1(gateway: Gateway) -> None:
    doc = fetch_document(gateway)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "keygate admin API"
    assert doc["servers"] == [{"url": "/admin/v1", "description": "This gateway's admin API"}]
    # Against the official OpenAPI 3.1 schema…
    schemathesis.openapi.from_dict(doc).validate()
    # …and each schema object against JSON Schema 2020-12, which the
    # OpenAPI schema leaves unchecked (bad patterns, wrong keywords).
    for name, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    for path, item in doc["paths"].items():
        for method in METHODS:
            for param in item.get(method, {}).get("parameters", []):
                assert jsonschema_rs.meta.is_valid(param["schema"]), (method, path, param["name"])
    assert DOCUMENTED <= operations(doc), DOCUMENTED - operations(doc)
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_the_document_needs_the_admin_credential(gateway: Gateway) -> None:
    assert_openai_error(gateway.http.get("/admin/v1/openapi.json"), 401, "missing_api_key")
    data_key = gateway.create_key()["key"]
    r = gateway.http.get("/admin/v1/openapi.json", headers={"authorization": f"Bearer {data_key}"})
    assert_openai_error(r, 403, "admin_required")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_schemathesis_finds_nothing(spawn: Spawner, backend: str, tmp_path: Path) -> None:
    """Every documented operation, every check schemathesis has: no 5xx,
    statuses, content types, headers and bodies as documented, invalid
    input refused, valid input accepted, auth enforced, deleted things gone.
    Deterministic (fixed seed, derandomized generation, one worker)."""
    # A gateway of its own: schemathesis creates, replaces and deletes stored
    # provider credentials, which the shared gateways' other tests use.
    gw = spawn.gateway(backend, name=f"openapi-{backend}")
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    schemathesis_cli = Path(sys.executable).with_name("schemathesis")
    report_path = tmp_path / "report.json"
    argv = [
        str(schemathesis_cli), "--config-file", str(config), "--no-color",
        "run", f"{gw.url}/admin/v1/openapi.json",
        "--report", "json", "--report-json-path", str(report_path),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}
    env["KEYGATE_E2E_ADMIN_KEY"] = str(gw.admin_key)
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    # schemathesis masks the Authorization header in what it prints.
    printed, status = out.stdout + out.stderr, out.returncode
    del out, env
    assert status == 0, f"schemathesis found problems:\n{printed}"
    assert "No issues found" in printed or "1 warning" in printed, printed

    report = json.loads(report_path.read_text())
    assert report["complete"] and not report["failures"] and not report["errors"], printed
    ops = report["operations"]
    assert ops["tested"] == ops["selected"] == ops["total"] and ops["errored"] == 0, ops
    # A bulk revocation needs an owner or a project, which JSON Schema
    # cannot say of two optional fields: most generated bodies name neither
    # and are refused; that warning, for that operation only, is expected.
    found = dict(report["warnings"])
    found["validation_mismatch"] = [
        op for op in found.get("validation_mismatch", []) if op != "POST /keys/revoke"
    ]
    warnings = {name: ops for name, ops in found.items() if ops}
    assert not warnings, f"schemathesis warned: {warnings}\n{printed}"
    # It really got in: every documented operation (but the document itself,
    # which schemathesis leaves out) was tested and accepted valid input,
    # so the admin credential worked and the generated data was usable.
    accepted = {
        tuple(op.lower().split(" ", 1)): sum(phase["accepted"] for phase in phases.values())
        for op, phases in report["valid_rates"].items()
    }
    for operation in DOCUMENTED - {("get", "/openapi.json")}:
        assert accepted.get(operation, 0) > 0, (operation, accepted)
