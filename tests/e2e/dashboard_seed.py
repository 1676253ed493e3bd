"""Scale seed for the dashboard's timing test: a SQLite database created and
migrated by keygate, filled with a million data keys and ten million ledger
rows, and the usage rollups (hourly, daily, daily totals) rebuilt from them.

Not a test itself (no test_ prefix): the dashboard timing test imports
`seed_sqlite`, and it can be run by hand:

    python3 tests/e2e/dashboard_seed.py /tmp/seed-dir [--keys N] [--rows N]
    python3 tests/e2e/dashboard_seed.py /tmp/seed-dir --rollups-only

(with a data directory it first runs `keygate serve` once to create and
migrate `keygate.db` there, then seeds it, then times a start on it;
`--rollups-only` just rebuilds the rollups of an already seeded database).

Everything is generated inside SQLite (recursive CTEs), so Python never
holds the rows. Secrets are never generated: `secret_hash` is random hex
that no key hashes to.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

ORGS = 5
PROJECTS = 100  # project p belongs to organisation p % ORGS
OWNERS = 2_000  # owner o belongs to organisation o % ORGS (ORGS divides it)

# (provider, model, nanodollars per prompt token, per completion token)
MODELS = [
    ("openai", "gpt-4o", 2_500, 10_000),
    ("openai", "gpt-4o-mini", 150, 600),
    ("anthropic", "claude-sonnet-4", 3_000, 15_000),
    ("anthropic", "claude-haiku-3.5", 800, 4_000),
    ("gemini", "gemini-2.0-flash", 100, 400),
    ("groq", "llama-3.3-70b", 590, 790),
    ("deepseek", "deepseek-chat", 270, 1_100),
    ("openai", "gpt-4.1", 2_000, 8_000),
]

MIGRATION = (
    Path(__file__).resolve().parents[2]
    / "crates/keygate/migrations/sqlite/0016_usage_rollup.sql"
)


ROLLUPS = ("usage_hourly", "usage_daily", "usage_daily_totals")


def rollup_statements() -> list[tuple[str, str]]:
    """The migration's own INSERT … SELECT statements that fill the rollups,
    as (table, statement), in the migration's order (the daily totals are
    summed from usage_daily, so they come after it)."""
    text = MIGRATION.read_text()
    statements = [
        (m.group(1), m.group(0))
        for m in re.finditer(r"^INSERT INTO (\w+) .*?;", text, re.S | re.M)
    ]
    if tuple(table for table, _ in statements) != ROLLUPS:
        raise RuntimeError(f"expected the backfills of {ROLLUPS} in {MIGRATION}")
    return statements


def rebuild_rollups(db: sqlite3.Connection, log=print) -> dict[str, float]:
    """Empty the rollups and refill them with the migration's statements;
    returns the seconds each took."""
    timings: dict[str, float] = {}
    for table, statement in rollup_statements():
        t = time.monotonic()
        db.execute("BEGIN")
        db.execute(f"DELETE FROM {table}")
        db.execute(statement)
        db.execute("COMMIT")
        timings[table] = time.monotonic() - t
        count = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        log(f"seed: {table} rebuilt ({count} rows) in {timings[table]:.1f}s")
    return timings


def _fast(db: sqlite3.Connection) -> None:
    """Bulk-load settings: no journal, no syncs (a crash means reseeding)."""
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA temp_store = MEMORY")
    db.execute("PRAGMA cache_size = -1000000")  # 1 GB
    db.execute("PRAGMA locking_mode = EXCLUSIVE")


def _normal(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA locking_mode = NORMAL")
    db.execute("PRAGMA journal_mode = WAL")


def _case(values: list[str], index_sql: str) -> str:
    """A CASE expression picking values[index]."""
    arms = " ".join(f"WHEN {i} THEN {v}" for i, v in enumerate(values))
    return f"(CASE {index_sql} {arms} END)"


def seed_sqlite(
    db_path: str | os.PathLike[str],
    keys: int = 1_000_000,
    rows: int = 10_000_000,
    days: int = 30,
    now_ms: int | None = None,
    log=print,
) -> dict[str, float]:
    """Fill a keygate SQLite database (already created and migrated by
    `keygate serve`, not running) with `keys` data keys over ORGS
    organisations, PROJECTS projects and OWNERS owners, and `rows` ledger
    rows over the last `days` days; rebuild the rollups. Returns the
    seconds each phase took."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    span = days * DAY_MS
    timings: dict[str, float] = {}
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        _fast(db)

        t = time.monotonic()
        db.execute("BEGIN")
        for o in range(ORGS):
            db.execute(
                "INSERT OR IGNORE INTO organisations (id, name, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (f"org_seed{o}", f"seed-org-{o}", now_ms - span, now_ms - span),
            )
        for p in range(PROJECTS):
            db.execute(
                "INSERT OR IGNORE INTO projects (id, org_id, name, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (f"proj_seed{p:03d}", f"org_seed{p % ORGS}", f"seed-project-{p:03d}",
                 now_ms - span, now_ms - span),
            )
        db.execute("COMMIT")

        # Secondary indexes are built once at the end, not row by row.
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name IN ('keys', 'usage_events') AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            db.execute(f"DROP INDEX {name}")

        # Keys: created over the last year, a quarter rotated since, 2%
        # revoked, 1% suspended, 5% with an expiry (a fifth of those past).
        db.execute("BEGIN")
        db.execute(
            f"""
            WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < ?1)
            INSERT INTO keys (id, kind, name, env, secret_hash, hint, models, created_at,
                expires_at, revoked_at, revoke_reason, updated_at, suspended_at, rotated_at,
                org_id, project_id, owner)
            SELECT id, 'data', name, 'live', secret_hash, '...' || substr(secret_hash, 1, 4),
                '[]', created_at,
                CASE WHEN n % 20 = 7 THEN
                    CASE WHEN n % 100 = 7 THEN ?2 - (n % 1000) * 60000
                         ELSE ?2 + 86400000 * (1 + n % 300) END END,
                CASE WHEN n % 50 = 3 THEN created_at + (?2 - created_at) / 2 END,
                CASE WHEN n % 50 = 3 THEN 'seed' END,
                created_at,
                CASE WHEN n % 100 = 11 THEN ?2 - (n % 5000) * 60000 END,
                CASE WHEN n % 4 = 1 THEN created_at + (?2 - created_at) * (n % 7) / 8 END,
                'org_seed' || (n % {ORGS}),
                'proj_seed' || printf('%03d', n % {PROJECTS}),
                'owner' || printf('%04d', n % {OWNERS}) || '@seed.example'
            FROM (
                SELECT n,
                    'key_seed' || printf('%09d', n) AS id,
                    'svc-' || printf('%05d', (n * 7919) % 50000) AS name,
                    lower(hex(randomblob(32))) AS secret_hash,
                    ?2 - 365 * 86400000 + (n * 31536000000) / ?1 AS created_at
                FROM seq
            )
            """,
            (keys, now_ms),
        )
        db.execute("COMMIT")
        timings["keys"] = time.monotonic() - t
        log(f"seed: {keys} keys in {timings['keys']:.1f}s")

        # Ledger rows, oldest first (request ids ascending, so the primary
        # key index is appended to): half the traffic from the busiest 1%
        # of keys, 3% refused or failed. A row's tenancy is its key's.
        # SQLite flattens the inner SELECT into the outer one, so a column
        # defined with random() would be drawn anew at each use (a row's
        # key, owner and project would disagree); the key, model and token
        # counts are therefore hashes of n (multiplicative hashes with
        # distinct odd multipliers, high bits), the same at every use.
        t = time.monotonic()
        multipliers = [2654435761, 2246822519, 3266489917, 668265263]

        def mix(which: int) -> str:
            return f"(((n * {multipliers[which - 1]}) % 4294967296) / 256)"

        pick = f"{mix(2)} % 8"
        provider = _case([f"'{m[0]}'" for m in MODELS], "m")
        model = _case([f"'{m[1]}'" for m in MODELS], "m")
        in_price = _case([str(m[2]) for m in MODELS], "m")
        out_price = _case([str(m[3]) for m in MODELS], "m")
        busy = max(keys // 100, 1)
        db.execute("BEGIN")
        db.execute(
            f"""
            WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < ?1)
            INSERT INTO usage_events (request_id, ts, key_id, route, model, provider,
                prompt_tokens, completion_tokens, status, error_code, latency_ms, streamed,
                source_ip, user_agent, cached_tokens, cost_nanos, owner, project_id, org_id)
            SELECT 'req_seed' || printf('%010d', n), ts, 'key_seed' || printf('%09d', k),
                '/v1/chat/completions', {model}, {provider}, pt, ct, status,
                CASE status WHEN 429 THEN 'rate_limited' WHEN 500 THEN 'upstream_error' END,
                20 + abs(random()) % 3000, n % 3 = 0,
                '10.' || (k % 250) || '.' || (k / 250 % 250) || '.7', 'seed/1.0',
                pt / 4 * (n % 2), CASE WHEN status >= 400 THEN 0
                    ELSE (pt * {in_price} + ct * {out_price}) / 1000 END,
                'owner' || printf('%04d', k % {OWNERS}) || '@seed.example',
                'proj_seed' || printf('%03d', k % {PROJECTS}),
                'org_seed' || (k % {ORGS})
            FROM (
                SELECT n,
                    ?2 - ?3 + (n * ?3) / ?1 + abs(random()) % 1000 AS ts,
                    CASE WHEN n % 2 = 0 THEN {mix(1)} % {busy}
                         ELSE {mix(1)} % ?4 END AS k,
                    {pick} AS m,
                    50 + {mix(3)} % 4000 AS pt,
                    {mix(4)} % 1200 AS ct,
                    CASE WHEN n % 100 = 1 THEN 429 WHEN n % 100 = 2 THEN 500
                         WHEN n % 100 = 3 THEN 400 ELSE 200 END AS status
                FROM seq
            )
            """,
            (rows, now_ms - 1000, span, keys),
        )
        db.execute("COMMIT")
        timings["usage_events"] = time.monotonic() - t
        log(f"seed: {rows} ledger rows in {timings['usage_events']:.1f}s")

        t = time.monotonic()
        db.execute("BEGIN")
        for _, sql in indexes:
            db.execute(sql)
        db.execute("COMMIT")
        timings["indexes"] = time.monotonic() - t
        log(f"seed: {len(indexes)} indexes in {timings['indexes']:.1f}s")

        timings.update(rebuild_rollups(db, log))
    finally:
        _normal(db)
        db.close()
    timings["total"] = sum(timings.values())
    return timings


def _keygate_bin() -> str:
    default = Path(__file__).resolve().parents[2] / "target/debug/keygate"
    return os.environ.get("KEYGATE_BIN", str(default))


def _serve(data_dir: Path) -> subprocess.Popen:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KEYGATE_DATA_DIR": str(data_dir),
        "KEYGATE_LISTEN": "127.0.0.1:0",
        "KEYGATE_LOG": "warn",
    }
    return subprocess.Popen(
        [_keygate_bin(), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen, timeout: float) -> str:
    """Read the `listening on` line, then poll /readyz until 200."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    url = None
    assert proc.stdout is not None
    while url is None:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"keygate exited ({proc.wait()}) before listening")
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            url = m.group(1).rstrip("/")
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    return url
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError("keygate did not become ready")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_once(data_dir: Path, timeout: float = 600.0) -> tuple[float, int]:
    """Start `keygate serve` on `data_dir`, wait for /readyz, stop it.
    Returns (seconds to ready, RSS in KiB once ready)."""
    t = time.monotonic()
    proc = _serve(data_dir)
    try:
        _wait_ready(proc, timeout)
        seconds = time.monotonic() - t
        rss = _rss_kib(proc.pid)
    finally:
        _stop(proc)
    return seconds, rss


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rollups-only", action="store_true")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    db_path = args.data_dir / "keygate.db"
    if args.rollups_only:
        db = sqlite3.connect(db_path, isolation_level=None)
        try:
            _fast(db)
            timings = rebuild_rollups(db)
        finally:
            _normal(db)
            db.close()
        print("rollup timings (s):", {k: round(v, 1) for k, v in timings.items()})
        sys.exit(0)
    if not db_path.exists():
        seconds, _ = start_once(args.data_dir)
        print(f"created and migrated {db_path} in {seconds:.1f}s")
    timings = seed_sqlite(db_path, keys=args.keys, rows=args.rows, days=args.days)
    print("seed timings (s):", {k: round(v, 1) for k, v in timings.items()})
    seconds, rss = start_once(args.data_dir)
    print(f"keygate serve ready in {seconds:.1f}s, RSS {rss / 1024:.0f} MiB")
    sys.exit(0)
