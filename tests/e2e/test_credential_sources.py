"""Provider credentials from a mounted file, a command and the encrypted
store, rotated while requests flow: no restart, no failed request (task 3).

The mock's Azure deployment routes accept exactly one `api-key`, set through
its control API, so a request carrying a stale key fails there as it would at
Azure after the operator rotated the key.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from e2e_support import Gateway, MockProvider, Secret, marker, mock_reply, new_provider_key


def write_atomically(path: Path, text: str) -> None:
    """Replace a file the way a secret mount or `mv` does: whole or not at all."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text + "\n")
    tmp.chmod(0o600)
    os.replace(tmp, path)


class Setup:
    def __init__(self, gateway: Gateway, mock: MockProvider, key: Secret, key_file: Path, cmd_file: Path):
        self.gateway = gateway
        self.mock = mock
        self.key = key
        self.key_file = key_file
        self.cmd_file = cmd_file

    def accept_only(self, *provider_keys: str) -> None:
        """The keys the provider accepts now (two during a rotation's overlap)."""
        self.mock.http.put("/_mock/config", json={"azure_api_key": ",".join(provider_keys)}).raise_for_status()

    def ask(self, model: str, text: str) -> Any:
        return self.gateway.http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {self.key}"},
            json={"model": model, "messages": [{"role": "user", "content": text}]},
        )

    def keys_seen(self, text: str) -> list[str]:
        return [r["headers"].get("api-key", "") for r in self.mock.requests_containing(text)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, logs_dir: Path) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("credential-sources")
    mock = MockProvider(logs_dir, name="mock-credentials")
    first = new_provider_key("azure-first-")
    key_file = tmp / "azure.key"
    write_atomically(key_file, first)
    cmd_file = tmp / "from-command.key"
    write_atomically(cmd_file, first)
    config = tmp / "keygate.toml"
    config.write_text(
        f"""
[aliases]
from-file = "azfile/gpt-4o"
from-command = "azcmd/gpt-4o"
from-store = "azstored/gpt-4o"

[[providers]]
name = "azfile"
kind = "azure"
base_url = "{mock.url}"
api_key = {{ file = "{key_file}" }}

[[providers]]
name = "azcmd"
kind = "azure"
base_url = "{mock.url}"
api_key = {{ command = ["cat", "{cmd_file}"], ttl = "1h" }}

[[providers]]
name = "azstored"
kind = "azure"
base_url = "{mock.url}"
api_key = {{ stored = "azure-e2e" }}
"""
    )
    gw = Gateway(
        backend="sqlite",
        data_dir=tmp / "data",
        db_url=None,
        log_dir=logs_dir,
        providers=None,
        extra_env={"KEYGATE_CONFIG": str(config)},
        name="gateway-credentials",
    )
    s = Setup(gw, mock, gw.create_key()["key"], key_file, cmd_file)
    s.accept_only(first)
    try:
        yield s
    finally:
        gw.stop()
        mock.stop()


def rotate_under_load(setup: Setup, model: str, old: str, update_source) -> str:
    """Keep requests flowing on a thread through a rotation as operators do
    it: the provider accepts old and new keys, the source is updated
    (`update_source(new)`), then the provider revokes the old key. Every
    request must succeed, and the provider must see only the new key
    afterwards. Returns the new key."""
    failures: list[str] = []
    done = threading.Event()
    sent = 0

    def load() -> None:
        nonlocal sent
        while not done.is_set():
            text = f"under load {marker()}"
            r = setup.ask(model, text)
            sent += 1
            if r.status_code != 200 or r.json()["choices"][0]["message"]["content"] != mock_reply(text):
                failures.append(f"{r.status_code} {r.text[:200]}")

    # Warm up: the old key works.
    warm = f"before {marker()}"
    assert setup.ask(model, warm).status_code == 200
    thread = threading.Thread(target=load)
    thread.start()
    new = new_provider_key("azure-rotated-")
    try:
        setup.accept_only(old, new)
        update_source(new)
        # The old key dies: a request still carrying it is refused once,
        # keygate re-reads the source and retries with the new key.
        setup.accept_only(new)
        after = f"after {marker()}"
        r = setup.ask(model, after)
        assert r.status_code == 200, r.text
        # At most one refusal of the old key, then the new one answered.
        seen = setup.keys_seen(after)
        assert seen[-1] == new and len(seen) <= 2
        again = f"settled {marker()}"
        assert setup.ask(model, again).status_code == 200
        assert setup.keys_seen(again) == [new]
    finally:
        done.set()
        thread.join(timeout=60)
    assert sent > 0
    assert failures == [], failures[:3]
    return new


def test_a_rotated_credential_file_takes_effect_without_restart_or_failed_request(setup: Setup) -> None:
    old = setup.key_file.read_text().strip()
    new = rotate_under_load(setup, "from-file", old, lambda new: write_atomically(setup.key_file, new))
    setup.accept_only(new, setup.cmd_file.read_text().strip())


def test_a_command_credential_is_rerun_when_the_provider_refuses_the_cached_value(setup: Setup) -> None:
    old = setup.cmd_file.read_text().strip()
    rotate_under_load(setup, "from-command", old, lambda new: write_atomically(setup.cmd_file, new))


def test_a_stored_credential_is_encrypted_used_and_rotated_through_the_admin_api(setup: Setup) -> None:
    # Not stored yet: a clear 503, and nothing reached the provider.
    text = f"nothing stored {marker()}"
    r = setup.ask("from-store", text)
    assert r.status_code == 503, r.text
    assert "credential" in r.json()["error"]["message"]
    assert setup.mock.requests_containing(text) == []

    secret = new_provider_key("azure-stored-")
    setup.accept_only(secret)
    r = setup.gateway.admin.post("/admin/v1/provider-credentials", json={"name": "azure-e2e", "secret": secret})
    assert r.status_code == 201, r.text
    assert secret not in r.text
    text = f"stored {marker()}"
    assert setup.ask("from-store", text).status_code == 200
    assert setup.keys_seen(text) == [secret]

    def update(new: str) -> None:
        r = setup.gateway.admin.put("/admin/v1/provider-credentials/azure-e2e", json={"secret": new})
        assert r.status_code == 200, r.text

    rotate_under_load(setup, "from-store", secret, update)
    listed = setup.gateway.admin.get("/admin/v1/provider-credentials").text
    assert "azure-stored-" not in listed and "azure-rotated-" not in listed
    # The database holds no plaintext.
    db = (setup.gateway.data_dir / "keygate.db").read_bytes()
    for path in setup.gateway.data_dir.glob("keygate.db*"):
        db += path.read_bytes()
    assert b"azure-stored-" not in db and b"azure-rotated-" not in db
