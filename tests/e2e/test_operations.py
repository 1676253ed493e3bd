"""Operations endpoints and the operator CLI against a running gateway."""

from __future__ import annotations

import datetime as dt

from e2e_support import Secret, assert_openai_error, marker, well_formed_unknown_key


def test_health_and_readiness_need_no_credential(gateway) -> None:
    assert gateway.http.get("/healthz").status_code == 200
    assert gateway.http.get("/readyz").status_code == 200


def test_cli_create_show_list_revoke(gateway) -> None:
    name = f"cli-{marker()}"
    created = gateway.cli_json("keys", "create", "--name", name, "--models", "gpt-4o*", "--expires", "1h", "--format", "json")
    secret = Secret(created.pop("key"))
    ok = secret.startswith("kg_live_")
    assert ok and created["id"].startswith("key_") and created["status"] == "active"
    expires = dt.datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    left = expires - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(minutes=55) < left <= dt.timedelta(hours=1)

    shown = gateway.cli_json("keys", "show", created["id"], "--format", "json")
    assert shown["name"] == name and shown["models"] == ["gpt-4o*"] and "key" not in shown

    table = gateway.cli("keys", "list")
    assert table.returncode == 0 and created["id"] in table.stdout and name in table.stdout
    leaked = secret in table.stdout or secret[:-4] in table.stdout
    assert not leaked, "`keygate keys list` printed a secret"

    revoked = gateway.cli_json("keys", "revoke", created["id"], "--format", "json")
    assert revoked["status"] == "revoked"
    r = gateway.http.post("/v1/chat/completions", headers={"authorization": f"Bearer {secret}"},
                          json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert_openai_error(r, 401, "revoked_api_key")


def test_cli_refuses_a_past_expiry_and_unknown_env(gateway) -> None:
    out = gateway.cli("keys", "create", "--name", "x", "--expires", "2000-01-01T00:00:00Z", "--format", "json")
    assert out.returncode != 0 and "expires" in out.stderr
    out = gateway.cli("keys", "create", "--name", "x", "--env", "prod", "--format", "json")
    assert out.returncode != 0 and "prod" in out.stderr
    assert "kg_" not in out.stdout


def test_cli_with_a_wrong_admin_key_fails_cleanly(gateway, tmp_path) -> None:
    wrong = well_formed_unknown_key("admin")
    (tmp_path / "admin.key").write_text(wrong + "\n")
    out = gateway.cli("keys", "list", admin_dir=tmp_path)
    assert out.returncode != 0
    assert "401" in out.stderr
    leaked = wrong in out.stderr or wrong in out.stdout
    assert not leaked, "the CLI echoed the admin credential"
    # No admin credential at all: a message that says where it looked.
    out = gateway.cli("keys", "list", admin_dir=tmp_path / "empty")
    assert out.returncode != 0 and "admin" in out.stderr.lower()


def test_usage_time_filters(gateway) -> None:
    k = gateway.create_key()
    with gateway.openai(k["key"]) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": marker()}])
    r = gateway.admin.get("/admin/v1/usage", params={"key_id": k["id"], "since": "1h"})
    assert r.status_code == 200 and r.json()["data"][0]["requests"] == 1
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    r = gateway.admin.get("/admin/v1/usage", params={"key_id": k["id"], "since": future})
    assert r.status_code == 200 and r.json()["data"] == []
    r = gateway.admin.get("/admin/v1/usage", params={"key_id": k["id"], "until": "2000-01-01T00:00:00Z"})
    assert r.json()["data"] == []
    r = gateway.admin.get("/admin/v1/usage", params={"since": "yesterday-ish"})
    assert_openai_error(r, 400)
    r = gateway.admin.get("/admin/v1/usage/events", params={"limit": 0})
    assert_openai_error(r, 400)
    r = gateway.admin.get("/admin/v1/usage/events", params={"bogus": 1})
    assert_openai_error(r, 400)


def test_admin_delete_revokes_and_unknown_ids_are_404(gateway) -> None:
    k = gateway.create_key()
    r = gateway.admin.delete(f"/admin/v1/keys/{k['id']}")
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = gateway.http.post("/v1/chat/completions", headers={"authorization": f"Bearer {k['key']}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert_openai_error(r, 401, "revoked_api_key")
    assert_openai_error(gateway.admin.get("/admin/v1/keys/key_doesnotexist0000"), 404)
    assert_openai_error(gateway.admin.post("/admin/v1/keys/key_doesnotexist0000/revoke", json={}), 404)


def test_admin_hostile_ids_are_4xx_not_store_errors(gateway) -> None:
    """A NUL in an id or filter is the client's mistake (PostgreSQL cannot
    even compare such text): a 4xx, not a 503 'store unavailable'."""
    r = gateway.admin.get("/admin/v1/keys/key_abc%00def")
    assert r.status_code in (400, 404), r.text
    r = gateway.admin.get("/admin/v1/usage/events", params={"key_id": "key_a\u0000b"})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert r.json()["data"] == []
    r = gateway.admin.get("/admin/v1/usage", params={"key_id": "key_a\u0000b"})
    assert r.status_code in (200, 400), r.text
    r = gateway.admin.post("/admin/v1/keys/key_abc%00def/revoke", json={})
    assert r.status_code in (400, 404), r.text
    assert gateway.http.get("/readyz").status_code == 200


def test_keys_rotate_prints_the_new_secret_and_the_old_one_keeps_its_grace(gateway) -> None:
    created = gateway.create_key()
    rotated = gateway.cli_json("keys", "rotate", created["id"], "--grace", "1h", "--format", "json")
    assert rotated["id"] == created["id"]
    new = rotated["key"]
    assert new.startswith("kg_live_") and new != created["key"]
    assert rotated["previous_secret_expires_at"]
    for secret in (created["key"], new):
        r = gateway.http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "rotated"}]},
        )
        assert r.status_code == 200, r.text
    # Table output names the grace period and prints the secret once.
    out = gateway.cli("keys", "rotate", created["id"], "--grace", "0s")
    assert out.returncode == 0, out.stderr
    assert "no longer works" in out.stdout
    r = gateway.http.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {new}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "old"}]},
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "expired_api_key"


def test_keys_suspend_and_resume(gateway) -> None:
    created = gateway.create_key()

    def call() -> int:
        return gateway.http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {created['key']}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "s"}]},
        ).status_code

    assert gateway.cli_json("keys", "suspend", created["id"], "--format", "json")["status"] == "suspended"
    assert call() == 401
    assert gateway.cli_json("keys", "resume", created["id"], "--format", "json")["status"] == "active"
    assert call() == 200


def test_audit_cli_lists_admin_changes(gateway) -> None:
    created = gateway.create_key()
    gateway.revoke(created["id"], reason="audit e2e")
    events = gateway.cli_json("audit", "--target", created["id"], "--format", "json")
    assert isinstance(events, list)
    assert [e["action"] for e in events] == ["key.revoke", "key.create"]  # newest first
    assert {"time", "actor", "action", "target"} <= set(events[0])
    assert events[0]["target"] == created["id"]
    table = gateway.cli("audit", "--action", "key.revoke", "--limit", "5")
    assert table.returncode == 0 and created["id"] in table.stdout
    assert created["key"] not in table.stdout


def test_keys_create_and_update_policy_flags(gateway) -> None:
    created = gateway.cli_json(
        "keys", "create", "--name", f"policy {marker()}", "--scopes", "chat,models",
        "--allow-ips", "127.0.0.1,10.0.0.0/8", "--description", "ci key", "--format", "json",
    )
    assert created["scopes"] == ["chat", "models"]
    assert created["allow_ips"] == ["127.0.0.1", "10.0.0.0/8"]
    key = created["key"]
    r = gateway.http.post(
        "/v1/embeddings",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "text-embedding-3-small", "input": "x"},
    )
    assert_openai_error(r, 403, "scope_not_allowed")
    updated = gateway.cli_json("keys", "update", created["id"], "--allow-ips", "10.0.0.0/8", "--format", "json")
    assert updated["allow_ips"] == ["10.0.0.0/8"]
    r = gateway.http.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
    )
    assert_openai_error(r, 403, "ip_not_allowed")
    out = gateway.cli("keys", "update", created["id"], "--scopes", "root")
    assert out.returncode != 0 and "scope" in out.stderr
