"""Helpers for the end-to-end suite: processes, the gateway, the mock provider,
secrets that never show up in test output, and error-shape assertions.

Everything here drives the real `keygate` binary; nothing is faked.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai

KEYGATE_BIN = os.environ.get("KEYGATE_BIN", "/work/main/target/debug/keygate")
PG_HOST = os.environ.get("KEYGATE_E2E_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("KEYGATE_E2E_PG_PORT", "5432")
PG_USER = os.environ.get("KEYGATE_E2E_PG_USER", "postgres")

START_TIMEOUT = 30.0
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

# Variables a child process must never inherit from the developer's shell.
# The children get an explicit environment; the test process itself also
# drops these so the SDKs cannot pick up a real credential or base URL.
SENSITIVE_PREFIXES = (
    "OPENAI_",
    "ANTHROPIC_",
    "GEMINI_",
    "GROQ_",
    "DEEPSEEK_",
    "KEYGATE_",
    "AZURE_OPENAI_",
)


class Secret(str):
    """A secret string whose repr is masked, so pytest's assertion
    introspection and tracebacks never print it."""

    def __repr__(self) -> str:  # pragma: no cover - only seen on failures
        return "<secret>"


def new_provider_key(prefix: str) -> Secret:
    return Secret(prefix + secrets.token_hex(24))


def base_env() -> dict[str, str]:
    """A minimal child environment built from scratch."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "RUST_BACKTRACE": "1",
    }
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


def marker() -> str:
    """A word unique to one request, to find it again in the mock's log."""
    return "m" + uuid.uuid4().hex[:16]


def mock_reply(last_user_text: str) -> str:
    return f"Hello from mock! You said: {last_user_text}"


def words(*texts: str) -> int:
    return sum(len(t.split()) for t in texts)


# --------------------------------------------------------------- processes --


class Proc:
    """A child process in its own process group, with its stdout read line by
    line on a thread (so tests can wait for a line, an event, not a delay) and
    its stderr in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self._stderr = open(self.stderr_path, "ab")
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                if self._eof:
                    self.popen.wait(timeout=5)
                    raise RuntimeError(
                        f"{self.name} exited with status {self.popen.returncode} before printing "
                        f"/{pattern}/; stderr tail:\n{self.stderr_tail()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self.name} did not print /{pattern}/ within {timeout}s")
                self._cond.wait(remaining)

    def stdout_text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def stderr_tail(self, n: int = 30) -> str:
        self._stderr.flush()
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group, at once."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(timeout=10)
        self._close()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 10 s."""
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=10)
        else:
            # The group may still hold children; make sure nothing lingers.
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._close()

    def _close(self) -> None:
        self._reader.join(timeout=5)
        if self.popen.stdout:
            self.popen.stdout.close()
        self._stderr.close()


# ------------------------------------------------------------------- mock --


class MockProvider:
    """`keygate mock-provider` on an ephemeral port."""

    def __init__(self, log_dir: Path, extra_args: list[str] | None = None, name: str = "mock"):
        self.proc = Proc(
            name,
            [KEYGATE_BIN, "mock-provider", "--listen", "127.0.0.1:0", *(extra_args or [])],
            base_env(),
            log_dir,
        )
        try:
            m = self.proc.wait_for_line(r"mock-provider listening on (http://\S+)")
        except BaseException:
            self.proc.stop()
            raise
        self.url = m.group(1).rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT)

    def requests(self) -> list[dict[str, Any]]:
        r = self.http.get("/_mock/requests")
        r.raise_for_status()
        return r.json()

    def requests_containing(self, text: str) -> list[dict[str, Any]]:
        return [r for r in self.requests() if text in r.get("body", "")]

    def clear_requests(self) -> None:
        self.http.delete("/_mock/requests").raise_for_status()

    def add_fault(self, **fault: Any) -> None:
        self.http.post("/_mock/faults", json=fault).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_mock/faults").raise_for_status()

    def stop(self) -> None:
        self.http.close()
        self.proc.stop()


# ------------------------------------------------------------- PostgreSQL --


class Postgres:
    """Creates throw-away databases on the local server and drops them all at
    the end of the session."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.prefix = f"keygate_e2e_{os.getpid()}_{secrets.token_hex(3)}"

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = subprocess.run(
            ["psql", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            env=base_env(),
            capture_output=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({out.returncode}): {out.stderr.decode(errors='replace')}")
        return out.stdout.decode(errors="replace")

    def create_db(self) -> str:
        name = f"{self.prefix}_{len(self.created)}"
        self.psql(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return name

    def url(self, db: str) -> str:
        return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"

    def dump(self, db: str) -> bytes:
        out = subprocess.run(
            ["pg_dump", "-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER, "--no-owner", db],
            env=base_env(),
            capture_output=True,
            timeout=120,
        )
        if out.returncode != 0:
            raise RuntimeError(f"pg_dump failed: {out.stderr.decode(errors='replace')}")
        return out.stdout

    def drop_all(self) -> None:
        for name in self.created:
            try:
                self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except RuntimeError:
                pass
        self.created.clear()


# ---------------------------------------------------------------- gateway --


class Gateway:
    """`keygate serve` with an explicit environment, on an ephemeral port
    (KEYGATE_LISTEN=127.0.0.1:0; the real address is read from the
    `listening on` line)."""

    def __init__(
        self,
        *,
        backend: str,
        data_dir: Path,
        db_url: str | None,
        log_dir: Path,
        providers: dict[str, str] | None,
        extra_env: dict[str, str] | None = None,
        name: str = "gateway",
        admin_dir: Path | None = None,
    ):
        self.backend = backend
        self.data_dir = data_dir
        # Where the admin credential lives: this node's data dir, or (for a
        # second node on a shared database) the first node's.
        self.admin_dir = admin_dir or data_dir
        self.db_url = db_url
        self.log_dir = log_dir
        self.name = name
        env = base_env()
        env.update(
            {
                "KEYGATE_LISTEN": "127.0.0.1:0",
                "KEYGATE_DATA_DIR": str(data_dir),
                "KEYGATE_LOG": "info,keygate=debug",
            }
        )
        if db_url:
            env["KEYGATE_DATABASE_URL"] = db_url
        env.update(providers or {})
        env.update(extra_env or {})
        self.env = env
        self.proc: Proc | None = None
        self._restarts = 0
        # A store of a million keys takes longer to load than the default.
        self.start_timeout = START_TIMEOUT
        self.start()

    # lifecycle

    def start(self) -> None:
        assert self.proc is None or not self.proc.alive()
        label = self.name if self._restarts == 0 else f"{self.name}-restart{self._restarts}"
        self._restarts += 1
        self.proc = Proc(label, [KEYGATE_BIN, "serve"], self.env, self.log_dir)
        try:
            m = self.proc.wait_for_line(
                r"keygate: listening on (http://\S+) \(store: (\w+)\)", timeout=self.start_timeout
            )
        except BaseException:
            self.proc.stop()  # never leave a half-started process behind
            raise
        self.url = m.group(1).rstrip("/")
        self.store_kind = m.group(2)
        # Raw client for hand-made requests: one connection per request, so
        # a connection the gateway closes after an early refusal cannot spill
        # into the next test (that behaviour has its own test,
        # test_connection.py). The SDK clients keep connections alive.
        self.http = httpx.Client(
            base_url=self.url, timeout=HTTP_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.admin = httpx.Client(
            base_url=self.url,
            timeout=HTTP_TIMEOUT,
            headers={"authorization": f"Bearer {self.admin_key}"} if self.admin_key else {},
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill9()
        self._close_clients()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        self._close_clients()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _close_clients(self) -> None:
        for c in (getattr(self, "http", None), getattr(self, "admin", None)):
            if c is not None:
                c.close()

    @property
    def stdout(self) -> str:
        assert self.proc is not None
        return self.proc.stdout_text()

    @property
    def admin_key_path(self) -> Path:
        return self.admin_dir / "admin.key"

    @property
    def admin_key(self) -> Secret | None:
        try:
            return Secret(self.admin_key_path.read_text().strip())
        except FileNotFoundError:
            return None

    # admin API

    def create_key(self, name: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": name or f"e2e-{marker()}", **fields}
        r = self.admin.post("/admin/v1/keys", json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        created["key"] = Secret(created["key"])
        return created

    def events(self, key_id: str | None = None, limit: int = 10000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if key_id:
            params["key_id"] = key_id
        r = self.admin.get("/admin/v1/usage/events", params=params)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def revoke(self, key_id: str, reason: str = "e2e") -> dict[str, Any]:
        r = self.admin.post(f"/admin/v1/keys/{key_id}/revoke", json={"reason": reason})
        assert r.status_code == 200, r.text
        return r.json()

    # CLI

    def cli(
        self, *args: str, admin_dir: Path | None = None, admin_key: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = base_env()
        env["KEYGATE_URL"] = self.url
        env["KEYGATE_DATA_DIR"] = str(admin_dir or self.admin_dir)
        if admin_key is not None:
            env["KEYGATE_ADMIN_KEY"] = admin_key
        return subprocess.run(
            [KEYGATE_BIN, *args], env=env, capture_output=True, text=True, timeout=60
        )

    def cli_json(self, *args: str, admin_dir: Path | None = None, admin_key: str | None = None) -> Any:
        out = self.cli(*args, admin_dir=admin_dir, admin_key=admin_key)
        # stderr carries only error text, never a secret; stdout may hold a key.
        assert out.returncode == 0, f"keygate {args[:2]} failed: {out.stderr}"
        return json.loads(out.stdout)

    # SDK clients

    def openai(self, key: str, **kw: Any) -> openai.OpenAI:
        return openai.OpenAI(api_key=key, base_url=f"{self.url}/v1", max_retries=0, timeout=30.0, **kw)

    def anthropic(self, key: str, **kw: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(api_key=key, base_url=self.url, max_retries=0, timeout=30.0, **kw)


# ---------------------------------------------------------------- spawner --


class Spawner:
    """Starts gateways (and remembers them, to stop them all at teardown)."""

    def __init__(self, tmp: Any, logs: Path, pg: Postgres, mock: MockProvider, keys: dict[str, Secret]):
        self.tmp = tmp
        self._logs = logs
        self.pg = pg
        self._mock = mock
        self._keys = keys
        self.started: list[Gateway] = []

    def providers(self) -> dict[str, str]:
        return {
            "OPENAI_API_KEY": self._keys["openai"],
            "OPENAI_BASE_URL": f"{self._mock.url}/v1",
            "ANTHROPIC_API_KEY": self._keys["anthropic"],
            "ANTHROPIC_BASE_URL": self._mock.url,
        }

    def store(self, backend: str) -> tuple[Path, str | None]:
        data_dir = self.tmp.mktemp(f"data-{backend}")
        if backend == "postgres":
            return data_dir, self.pg.url(self.pg.create_db())
        return data_dir, None

    def gateway(
        self,
        backend: str,
        *,
        with_providers: bool = True,
        extra_env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        db_url: str | None = None,
        name: str | None = None,
        admin_dir: Path | None = None,
    ) -> Gateway:
        if data_dir is None:
            data_dir, fresh_url = self.store(backend)
            db_url = db_url or fresh_url
        gw = Gateway(
            backend=backend,
            data_dir=data_dir,
            db_url=db_url,
            log_dir=self._logs,
            providers=self.providers() if with_providers else None,
            extra_env=extra_env,
            name=name or f"gateway-{backend}-{len(self.started)}",
            admin_dir=admin_dir,
        )
        self.started.append(gw)
        assert gw.store_kind == backend
        return gw

    def stop_all(self) -> None:
        for gw in reversed(self.started):
            gw.stop()
        self.started.clear()


# -------------------------------------------------------------- key format --

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 62)
        out = _B62[r] + out
        if n == 0:
            return out


def keygate_checksum(signed_part: str) -> str:
    """CRC32 of `kg_<env>_<random>`, base62, left-padded to 6 (DESIGN: the
    GitHub token scheme)."""
    return _base62(zlib.crc32(signed_part.encode())).rjust(6, "0")


def well_formed_unknown_key(env: str = "live") -> Secret:
    """A string with a keygate key's exact shape and a valid checksum that no
    gateway ever issued."""
    random_part = "".join(secrets.choice(_B62) for _ in range(32))
    signed = f"kg_{env}_{random_part}"
    return Secret(signed + keygate_checksum(signed))


def tamper(key: str) -> Secret:
    """The key with one random-part character changed (checksum now wrong)."""
    i = len("kg_live_") + 5
    ch = "a" if key[i] != "a" else "b"
    return Secret(key[:i] + ch + key[i + 1 :])


# ---------------------------------------------------------- error shapes --


def assert_openai_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers.get("content-type", "").startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["type"], str) and err["type"], err
    if code is not None:
        assert err["code"] == code, err
    return err


def assert_anthropic_error(resp: httpx.Response, status: int, type_: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers.get("content-type", "").startswith("application/json")
    body = resp.json()
    assert body.get("type") == "error", body
    err = body["error"]
    assert isinstance(err, dict) and {"type", "message"} <= set(err), body
    assert isinstance(err["message"], str) and err["message"], body
    if type_ is not None:
        assert err["type"] == type_, body
    return err


def assert_request_id(resp: httpx.Response) -> str:
    rid = resp.headers.get("x-request-id", "")
    assert re.fullmatch(r"req_[0-9A-Za-z]+", rid), f"x-request-id missing or malformed: {rid!r}"
    return rid


def contains_any_window(blob: bytes, secret: str, width: int = 12) -> bool:
    """True if the secret, or any `width`-character slice of it, occurs in
    `blob` (a key stored partially, e.g. without its prefix or checksum,
    counts as stored)."""
    data = blob
    s = secret.encode()
    if s in data:
        return True
    return any(s[i : i + width] in data for i in range(0, len(s) - width + 1))


def read_sse_request(
    client: httpx.Client, url: str, *, headers: dict[str, str], body: dict[str, Any]
) -> tuple[str | None, list[str], bool]:
    """POST a streaming request; return (x-request-id, data payloads, saw [DONE])."""
    datas: list[str] = []
    done = False
    with client.stream("POST", url, headers=headers, json=body) as r:
        rid = r.headers.get("x-request-id")
        if r.status_code != 200:
            r.read()
            return rid, [r.text], False
        for line in r.iter_lines():
            if line.startswith("data:"):
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                else:
                    datas.append(payload)
    return rid, datas, done


# ------------------------------------------------------------- raw HTTP/1 --


class RawHttp:
    """One TCP connection speaking HTTP/1.1 by hand, for what an HTTP library
    will not send (bodies after an early response, bad request lines)."""

    def __init__(self, url: str, timeout: float = 10.0):
        import socket

        u = httpx.URL(url)
        self.sock = socket.create_connection((u.host, u.port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_response(self) -> tuple[int, dict[str, str], bytes] | None:
        """One response (Content-Length bodies only), or None if the server
        closed the connection first."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            if not self._fill():
                break
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def close(self) -> None:
        self.sock.close()
