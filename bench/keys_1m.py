#!/usr/bin/env python3
"""keygate with a million keys: startup time, resident memory per key and
request throughput, against the same gateway with an empty key store.

Run from the repository root after `cargo build --release`:
    python3 bench/keys_1m.py [--keys 1000000] [--duration 10s]

The keys are written straight into the SQLite store (HMAC-SHA256 digests
under the server secret, as keygate stores them); only the key used for the
load is a real, usable secret, created through the admin API.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KG = ROOT / "target" / "release" / "keygate"
LUA = ROOT / "bench" / "load.lua"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(cmd: list[str], env: dict[str, str], pattern: str) -> tuple[subprocess.Popen, re.Match, float]:
    began = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(pattern, line)
        if m:
            return proc, m, time.monotonic() - began
    raise RuntimeError(f"{cmd[1]} exited before printing {pattern!r}")


def seed(db: Path, pepper: bytes, count: int) -> float:
    """Insert `count` data keys (random secrets, stored as keygate stores them)."""
    began = time.monotonic()
    con = sqlite3.connect(db)
    now = int(time.time() * 1000)
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    batch = []
    for i in range(count):
        secret = "kg_live_" + secrets.token_hex(16)
        digest = hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()
        key_id = "key_" + "".join(alphabet[(i // 62**j) % 62] for j in range(6)) + secrets.token_hex(5)
        batch.append((key_id, "data", f"bench {i}", "live", digest, "…" + secret[-4:], "[]", now, now,
                      "org_default", "proj_default", f"owner-{i % 1000}"))
        if len(batch) == 50_000:
            con.executemany(
                "INSERT INTO keys (id, kind, name, env, secret_hash, hint, models, created_at, updated_at, "
                "org_id, project_id, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
            con.commit()
            batch.clear()
    if batch:
        con.executemany(
            "INSERT INTO keys (id, kind, name, env, secret_hash, hint, models, created_at, updated_at, "
            "org_id, project_id, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
        con.commit()
    con.close()
    return time.monotonic() - began


def measure(label: str, data_dir: Path, env: dict[str, str], duration: str) -> dict[str, float]:
    gw, m, startup = start(
        [str(KG), "serve"], {**env, "KEYGATE_DATA_DIR": str(data_dir)}, r"listening on (http://\S+)"
    )
    url = m.group(1)
    try:
        admin = (data_dir / "admin.key").read_text().strip()
        out = subprocess.run(
            [str(KG), "keys", "create", "--name", "load", "--format", "json"],
            env={**env, "KEYGATE_URL": url, "KEYGATE_ADMIN_KEY": admin},
            capture_output=True, text=True, check=True,
        )
        import json

        key = json.loads(out.stdout)["key"]
        rss_idle = rss_kib(gw.pid)
        run = subprocess.run(
            ["wrk", "-t2", "-c32", f"-d{duration}", "-s", str(LUA), f"{url}/v1/chat/completions"],
            env={**os.environ, "BENCH_KEY": key}, capture_output=True, text=True, check=True,
        )
        line = next(l for l in run.stdout.splitlines() if l.startswith("BENCH_RESULT"))
        fields = dict(kv.split("=") for kv in line.split()[1:])
        rps = int(fields["requests"]) / (int(fields["duration_us"]) / 1e6)
        errors = sum(int(fields[k]) for k in fields if k.startswith("err_"))
        result = {"startup_s": startup, "rss_mib": rss_idle / 1024, "rps": rps, "p99_us": int(fields["p99_us"]), "errors": errors}
        print(f"{label:>14}: startup {startup:6.2f} s  RSS {rss_idle / 1024:7.1f} MiB  "
              f"{rps:8.0f} req/s  p99 {result['p99_us']} µs  errors {errors}", flush=True)
        return result
    finally:
        gw.terminate()
        gw.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--duration", default="10s")
    args = parser.parse_args()
    assert KG.exists(), "build first: cargo build --release"
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        mock, m, _ = start([str(KG), "mock-provider", "--listen", "127.0.0.1:0"], dict(os.environ), r"listening on (http://\S+)")
        try:
            subprocess.run(["curl", "-s", "-X", "PUT", f"{m.group(1)}/_mock/config", "-d", '{"record":false}',
                            "-H", "content-type: application/json"], check=True, capture_output=True)
            pepper = secrets.token_urlsafe(48)
            env = {
                "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
                "KEYGATE_LISTEN": "127.0.0.1:0", "KEYGATE_SERVER_SECRET": pepper,
                "KEYGATE_WORKERS": "1", "KEYGATE_LOG": "warn",
                "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": f"{m.group(1)}/v1",
            }
            empty = measure("empty store", tmp_path / "empty", env, args.duration)
            full_dir = tmp_path / "full"
            gw, _, _ = start([str(KG), "serve"], {**env, "KEYGATE_DATA_DIR": str(full_dir)}, r"listening on")
            gw.terminate(); gw.wait(timeout=60)
            took = seed(full_dir / "keygate.db", pepper.encode(), args.keys)
            print(f"seeded {args.keys} keys in {took:.1f} s", flush=True)
            full = measure(f"{args.keys} keys", full_dir, env, args.duration)
            per_key = (full["rss_mib"] - empty["rss_mib"]) * 1024 * 1024 / args.keys
            print(f"resident memory per key: {per_key:.0f} bytes; startup with {args.keys} keys: "
                  f"{full['startup_s']:.2f} s; throughput {full['rps'] / empty['rps']:.2f}x the empty store's")
        finally:
            mock.terminate()
            mock.wait(timeout=30)


if __name__ == "__main__":
    main()
