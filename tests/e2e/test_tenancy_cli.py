"""Owners, projects, roles and bulk revocation through the operator CLI,
as the issue's interface names them."""

from __future__ import annotations

from e2e_support import Secret, assert_openai_error, marker


def chat(gateway, secret: str) -> int:
    return gateway.http.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "t"}]},
    ).status_code


def test_keys_carry_owner_project_env_scopes_and_networks(gateway) -> None:
    project = gateway.cli_json("projects", "create", "--name", f"p-{marker()}", "--format", "json")
    assert project["id"].startswith("proj_") and project["org_id"] == "org_default"
    created = gateway.cli_json(
        "keys", "create", "--name", "svc", "--owner", "alice@example.com", "--project", project["id"],
        "--env", "test", "--scopes", "chat,models", "--allow-ips", "10.0.0.0/8,127.0.0.1/32",
        "--format", "json",
    )
    secret = Secret(created.pop("key"))
    assert secret.startswith("kg_test_")
    assert created["owner"] == "alice@example.com" and created["project_id"] == project["id"]
    assert created["env"] == "test" and created["scopes"] == ["chat", "models"]
    assert created["allow_ips"] == ["10.0.0.0/8", "127.0.0.1/32"]

    updated = gateway.cli_json(
        "keys", "update", created["id"], "--owner", "bob@example.com", "--scopes", "chat",
        "--allow-ips", "127.0.0.0/8", "--format", "json",
    )
    assert updated["owner"] == "bob@example.com" and updated["scopes"] == ["chat"]
    assert updated["allow_ips"] == ["127.0.0.0/8"]
    # The environment is part of the secret: changing it is refused clearly.
    out = gateway.cli("keys", "update", created["id"], "--env", "live")
    assert out.returncode != 0 and "environment" in out.stderr

    # The list shows status, owner, environment, age, last use and source.
    live = gateway.create_key(owner="carol@example.com")
    assert chat(gateway, live["key"]) == 200
    table = gateway.cli("keys", "list")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    for column in ("STATUS", "OWNER", "ENV", "AGE", "LAST_USED_AT", "LAST_SOURCE_IP"):
        assert column in header, header
    row = next(line for line in table.stdout.splitlines() if live["id"] in line)
    assert "carol@example.com" in row and "active" in row and "0d" in row and "127.0.0.1" in row
    listed = gateway.cli_json("keys", "list", "--owner", "bob@example.com", "--format", "json")
    assert [k["id"] for k in listed] == [created["id"]]


def test_one_command_revokes_everything_an_owner_holds(gateway) -> None:
    owner = f"leaver-{marker()}@example.com"
    project = gateway.cli_json("projects", "create", "--name", f"p-{marker()}", "--format", "json")
    held = [gateway.create_key(owner=owner), gateway.create_key(owner=owner, project=project["id"])]
    kept = gateway.create_key(owner="stays@example.com", project=project["id"])
    for key in held + [kept]:
        assert chat(gateway, key["key"]) == 200

    out = gateway.cli_json("keys", "revoke", "--owner", owner, "--reason", "left the company", "--format", "json")
    assert out["revoked"] == 2 and out["selector"] == f"owner:{owner}"
    assert {k["revoke_reason"] for k in out["data"]} == {"left the company"}
    for key in held:
        r = gateway.http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {key['key']}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        )
        assert_openai_error(r, 401, "revoked_api_key")
    assert chat(gateway, kept["key"]) == 200

    out = gateway.cli_json("keys", "revoke", "--project", project["id"], "--format", "json")
    assert out["revoked"] == 1
    assert chat(gateway, kept["key"]) == 401

    # Neither an id nor a selector: clap refuses before anything is sent.
    out = gateway.cli("keys", "revoke")
    assert out.returncode != 0

    events = gateway.cli_json("audit", "--format", "json")
    bulk = [e for e in events if e["action"] == "key.revoke_bulk"]
    assert [e["target"] for e in bulk[:2]] == [f"project:{project['id']}", f"owner:{owner}"]
    assert all(e["time"] and e["actor"] for e in bulk)


def test_a_viewer_credential_reads_but_cannot_create(gateway) -> None:
    viewer = gateway.cli_json(
        "admin-credentials", "create", "--name", "auditor", "--role", "viewer", "--owner", "vic",
        "--format", "json",
    )
    secret = Secret(viewer.pop("key"))
    assert viewer["role"] == "viewer" and secret.startswith("kg_admin_")
    out = gateway.cli("keys", "list", admin_key=secret)
    assert out.returncode == 0, out.stderr
    out = gateway.cli("keys", "create", "--name", "nope", "--format", "json", admin_key=secret)
    assert out.returncode != 0 and "403" in out.stderr and "viewer" in out.stderr
    assert secret not in out.stderr and secret not in out.stdout
    listed = gateway.cli_json("admin-credentials", "list", "--format", "json")
    assert viewer["id"] in {c["id"] for c in listed}
    revoked = gateway.cli_json("admin-credentials", "revoke", viewer["id"], "--format", "json")
    assert revoked["status"] == "revoked"
    out = gateway.cli("keys", "list", admin_key=secret)
    assert out.returncode != 0 and "401" in out.stderr
