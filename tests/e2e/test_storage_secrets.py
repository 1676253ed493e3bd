"""Storage never reveals a key (task 7): not the SQLite file (nor its WAL),
not a pg_dump, not the logs; and the bootstrap credential file is 0600."""

from __future__ import annotations

import re
import stat

from e2e_support import contains_any_window, marker

# A whole keygate key of any environment.
KEY_PATTERN = re.compile(rb"kg_[a-z0-9]{1,16}_[0-9A-Za-z]{38}")


def _use_keys(gateway) -> list[str]:
    secrets_made, ids = [], []
    for fields in ({}, {"env": "test", "models": ["gpt-*"]}, {"models": ["claude-*"]}):
        k = gateway.create_key(**fields)
        secrets_made.append(k["key"])
        ids.append(k["id"])
        model = "claude-haiku-4-5" if fields.get("models") == ["claude-*"] else "gpt-4o-mini"
        if model.startswith("claude"):
            with gateway.anthropic(k["key"]) as c:
                c.messages.create(model=model, max_tokens=8, messages=[{"role": "user", "content": marker()}])
        else:
            with gateway.openai(k["key"]) as c:
                c.chat.completions.create(model=model, messages=[{"role": "user", "content": marker()}])
    # One of them revoked, one refused request with a key in the query
    # string (that request's URL must not end up stored either).
    gateway.revoke(ids[2])
    gateway.http.get("/v1/models", params={"key": secrets_made[0]})
    return secrets_made


def _assert_no_secret(blob: bytes, secrets_to_find: list[str], where: str) -> None:
    for i, s in enumerate(secrets_to_find):
        found = contains_any_window(blob, s)
        assert not found, f"secret #{i} (or a 12-character piece of it) is in {where}"
    whole = KEY_PATTERN.search(blob) is not None
    assert not whole, f"a whole keygate key is in {where}"


def test_storage_and_logs_never_hold_a_secret(gateway, provider_keys, pg, mock) -> None:
    made = _use_keys(gateway)
    admin = gateway.admin_key
    everything = [*made, admin, provider_keys["openai"], provider_keys["anthropic"]]
    # Commit anything queued (refusals are queued without waiting).
    with gateway.openai(made[0]) as c:
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "flush"}])

    # The detector works: it finds the admin key where it is meant to be.
    found = contains_any_window(gateway.admin_key_path.read_bytes(), admin)
    assert found, "self-check: the admin key was not found in admin.key"

    checked = []
    # Every file, including the ledger journal's segments.
    for path in sorted(p for p in gateway.data_dir.rglob("*") if p.is_file()):
        if path.name == "admin.key":
            continue  # the bootstrap credential itself, by design
        _assert_no_secret(path.read_bytes(), everything, f"data dir file {path.name}")
        checked.append(path.name)
    if gateway.backend == "sqlite":
        assert "keygate.db" in checked
    else:
        dump = pg.dump(gateway.db_url.rsplit("/", 1)[1])
        assert b"usage_events" in dump and b"keys" in dump  # it is the right database
        assert sum(1 for m in re.finditer(rb"\bkey_[0-9A-Za-z]{16}\b", dump)) >= 3
        _assert_no_secret(dump, everything, "pg_dump of the keygate database")

    # The gateway's own output: stdout names the admin file, never the secret;
    # stderr (logs at debug level for keygate) holds no secret either.
    _assert_no_secret(gateway.stdout.encode(), everything, "gateway stdout")
    assert str(gateway.admin_key_path) in gateway.stdout
    _assert_no_secret(gateway.proc.stderr_path.read_bytes(), everything, "gateway logs")


def test_bootstrap_admin_file_is_owner_only(gateway) -> None:
    mode = stat.S_IMODE(gateway.admin_key_path.stat().st_mode)
    assert mode == 0o600, oct(mode)
    text = gateway.admin_key_path.read_text()
    ok = re.fullmatch(r"kg_admin_[0-9A-Za-z]{38}\n?", text) is not None
    assert ok, "admin.key does not hold exactly one admin credential"


def test_data_dir_files_are_owner_only(gateway) -> None:
    """The database and server secret are owner-only; so must be the SQLite
    WAL and shared-memory files, which hold the same rows."""
    loose = {}
    for path in gateway.data_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            loose[path.name] = oct(mode)
    assert loose == {}
