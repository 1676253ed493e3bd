"""A leaked key, end to end: it is used from its usual place, leaks, is used
from a new network, is reported by a signed leak report (built with the
`cryptography` package, as GitHub would sign it), and `keygate incident`
reports the exposure, checked against the ledger."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from e2e_support import Spawner

ATTACKER = "198.51.100.23"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_leak_report_then_incident_matches_the_ledger(spawn: Spawner, backend: str, tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    keys_file = tmp_path / "secret_scanning_keys.json"
    keys_file.write_text(json.dumps({"public_keys": [{"key_identifier": "gh-1", "key": pem, "is_current": True}]}))
    gw = spawn.gateway(
        backend,
        extra_env={
            "KEYGATE_LEAK_REPORT_KEYS": str(keys_file),
            # The test client stands in for a proxy, so requests can come
            # from other networks.
            "KEYGATE_TRUSTED_PROXIES": "127.0.0.1/32",
        },
        name=f"incident-{backend}",
    )
    created = gw.create_key(owner="dana@acme.test", models=["gpt-4o*"])
    key, key_id = created["key"], created["id"]
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    auth = {"authorization": f"Bearer {key}"}
    for _ in range(2):
        assert gw.http.post("/v1/chat/completions", json=chat, headers=auth).status_code == 200

    leaked_at = dt.datetime.now(dt.timezone.utc)
    attacker = {**auth, "x-forwarded-for": ATTACKER, "user-agent": "python-requests/2.0"}
    for model in ("gpt-4o", "gpt-4o", "gpt-4o-mini"):
        r = gw.http.post("/v1/chat/completions", json={**chat, "model": model}, headers=attacker)
        assert r.status_code == 200, r.text

    # GitHub finds it in a public repository and reports it.
    url = "https://github.com/acme/site/blob/0123abc/.env"
    body = json.dumps([{"token": key, "type": "keygate_api_key", "url": url, "source": "content"}]).encode()
    signature = base64.b64encode(private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
    headers = {
        "content-type": "application/json",
        "Github-Public-Key-Identifier": "gh-1",
        "Github-Public-Key-Signature": signature,
    }
    r = gw.http.post("/leak-reports", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == [{
        "token_hash": hashlib.sha256(key.encode()).hexdigest(),
        "token_type": "keygate_api_key",
        "label": "true_positive",
    }]
    # Revoked at once; the attacker's next request is refused.
    r = gw.http.post("/v1/chat/completions", json=chat, headers=attacker)
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"
    # A replay, and a batch with a bad signature, are refused.
    assert gw.http.post("/leak-reports", content=body, headers=headers).status_code == 409
    bad = {**headers, "Github-Public-Key-Signature": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()}
    assert gw.http.post("/leak-reports", content=body + b" ", headers=bad).status_code == 401

    since = leaked_at.isoformat().replace("+00:00", "Z")
    report = gw.cli_json("incident", key_id, "--since", since, "--replace", "--format", "json")
    assert report["key"]["status"] == "revoked"
    assert report["key"]["revoke_reason"] == "leaked"
    replacement = report["replacement"]["key"]
    assert report["replacement"]["owner"] == "dana@acme.test"
    r = gw.http.post("/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {replacement}"})
    assert r.status_code == 200

    exposure = report["report"]["exposure"]
    events = gw.events(key_id)
    window = [e for e in events if report["report"]["since"] <= e["ts"] <= report["report"]["until"]]
    # The window ends at the revocation: the attacker's three requests.
    assert exposure["requests"] == len(window) == 3
    assert exposure["refused"] == 0
    assert any(e["status"] == 401 and e["source_ip"] == ATTACKER for e in events), "refused after it"
    assert exposure["cost_nanos"] == sum(e["cost_nanos"] for e in window) > 0
    assert [s["name"] for s in exposure["sources"]] == [ATTACKER]
    differences = report["report"]["differences"]
    assert differences["new_sources"] == [ATTACKER]
    assert differences["new_user_agents"] == ["python-requests/2.0"]
    assert differences["new_models"] == ["gpt-4o"]
    assert report["report"]["leak_reports"][0]["url"] == url
    assert report["report"]["baseline"]["requests"] == 2
    # The text report names the same facts for people.
    text = gw.cli("incident", key_id, "--since", since)
    assert text.returncode == 0, text.stderr
    assert ATTACKER in text.stdout and "new source addresses" in text.stdout
