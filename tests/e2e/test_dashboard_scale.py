"""The dashboard at scale: 1,000,000 keys and 10,000,000 ledger rows in the
embedded SQLite store. Every page is fetched and its server time (the
`Server-Timing` header) printed and saved with the artifacts
(dashboard-scale.txt); the figures the pages show are checked against the
ledger itself, so the rollup behind them is right at this size too.

Takes a few minutes (most of it seeding); KEYGATE_E2E_SCALE_KEYS and
KEYGATE_E2E_SCALE_ROWS shrink it for a quick local run."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

import httpx

from dashboard_seed import seed_sqlite
from e2e_support import HTTP_TIMEOUT, Spawner

KEYS = int(os.environ.get("KEYGATE_E2E_SCALE_KEYS", "1000000"))
ROWS = int(os.environ.get("KEYGATE_E2E_SCALE_ROWS", "10000000"))
ARTIFACTS = Path(
    os.environ.get("KEYGATE_E2E_ARTIFACTS", Path(__file__).resolve().parents[2] / "target" / "e2e-artifacts")
)
# Starting on a million keys loads them all into memory first.
START_TIMEOUT_S = 600


def server_ms(response: httpx.Response) -> float:
    match = re.search(r"app;dur=([0-9.]+)", response.headers.get("server-timing", ""))
    assert match, "every dashboard answer carries Server-Timing"
    return float(match.group(1))


def test_every_page_with_a_million_keys_and_ten_million_ledger_rows(spawn: Spawner) -> None:
    gw = spawn.gateway("sqlite", name="dashboard-scale")
    db = gw.data_dir / "keygate.db"
    gw.stop()
    started = time.monotonic()
    seed_sqlite(str(db), keys=KEYS, rows=ROWS)
    seed_s = time.monotonic() - started

    started = time.monotonic()
    gw.start_timeout = START_TIMEOUT_S
    gw.start()
    start_s = time.monotonic() - started

    client = httpx.Client(
        base_url=gw.url, timeout=120.0, follow_redirects=False, headers={"sec-fetch-site": "same-origin"}
    )
    r = client.post("/dashboard/sign-in", data={"credential": gw.admin_key})
    assert r.status_code == 303, r.text

    # What the ledger says, read directly.
    con = sqlite3.connect(str(db))
    (ledger_rows,) = con.execute("SELECT COUNT(*) FROM usage_events").fetchone()
    (key_count,) = con.execute("SELECT COUNT(*) FROM keys WHERE kind = 'data'").fetchone()
    now_ms = int(time.time() * 1000)
    day_start = now_ms // 86_400_000 * 86_400_000
    (today_requests,) = con.execute("SELECT COUNT(*) FROM usage_events WHERE ts >= ?", (day_start,)).fetchone()
    (first_key,) = con.execute("SELECT id FROM keys WHERE kind = 'data' ORDER BY name, id LIMIT 1").fetchone()
    con.close()
    assert ledger_rows >= ROWS and key_count >= KEYS

    pages = [
        ("overview", "/dashboard/overview"),
        ("overview live figures", "/dashboard/overview/live"),
        ("chart 24h by provider", "/dashboard/overview/series?range=24h&split=provider&metric=cost_usd"),
        ("chart 30d by model", "/dashboard/overview/series?range=30d&split=model&metric=requests"),
        ("chart 30d by project", "/dashboard/overview/series?range=30d&split=project&metric=tokens"),
        ("keys, newest first", "/dashboard/keys"),
        ("keys, by name", "/dashboard/keys?sort=name"),
        ("keys, oldest secret first", "/dashboard/keys?sort=oldest&state=active"),
        ("keys, search by prefix", f"/dashboard/keys?q={first_key[:12]}"),
        ("key details", f"/dashboard/keys/{first_key}"),
        ("usage by provider, 30d", "/dashboard/usage?by=provider&range=30d"),
        ("usage by day and model, 30d", "/dashboard/usage?by=day,model&range=30d"),
        ("usage by project, 90d", "/dashboard/usage?by=project&range=90d"),
        ("usage by owner, 7d", "/dashboard/usage?by=owner&range=7d"),
        ("usage by key, 24h", "/dashboard/usage?by=key&range=24h"),
        ("usage of one key by model, 30d", f"/dashboard/usage?by=model&range=30d&key={first_key}"),
        ("usage CSV by project and model, 30d", "/dashboard/usage.csv?by=project,model&range=30d"),
        ("alerts", "/dashboard/alerts"),
        ("audit log", "/dashboard/audit"),
        ("providers", "/dashboard/providers"),
    ]
    timings: list[tuple[str, float, int]] = []
    bodies: dict[str, str] = {}
    for label, path in pages:
        r = client.get(path)
        assert r.status_code == 200, (label, r.status_code, r.text[:300])
        timings.append((label, server_ms(r), len(r.content)))
        bodies[label] = r.text

    # The keys page walks on by cursor.
    next_link = re.search(r'rel="next" href="([^"]+)"', bodies["keys, by name"])
    assert next_link, "a million keys take more than one page"
    r = client.get(next_link.group(1).replace("&amp;", "&"))
    assert r.status_code == 200
    timings.append(("keys, by name, second page", server_ms(r), len(r.content)))
    assert first_key not in r.text
    # The figures are the ledger's.
    assert f"{key_count} keys:" in bodies["keys, newest first"]
    tile = re.search(r'data-tile="Spend today">([^<]+)<', bodies["overview"])
    assert tile
    requests_today = re.search(r"([0-9,]+) requests \(UTC day\)", bodies["overview"])
    assert requests_today and int(requests_today.group(1).replace(",", "")) == today_requests

    report = [
        f"dashboard at scale: {key_count:,} keys, {ledger_rows:,} ledger rows (SQLite)",
        f"seeding took {seed_s:.1f} s; the gateway started on it in {start_s:.1f} s",
        "",
        f"{'page':<40} {'server ms':>10} {'bytes':>10}",
    ]
    report += [f"{label:<40} {ms:>10.1f} {size:>10,}" for label, ms, size in timings]
    text = "\n".join(report) + "\n"
    print("\n" + text)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "dashboard-scale.txt").write_text(text)
    client.close()
