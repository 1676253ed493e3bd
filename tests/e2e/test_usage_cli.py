"""`keygate usage` against a running gateway: totals carry cached tokens and
cost by the shipped price table, grouped per key and model (the default),
per model, per owner or per UTC day, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

from e2e_support import marker, mock_reply, words

# Shipped prices, US dollars per million tokens: input, cached input, output.
PRICES = {
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4o": (2.50, 1.25, 10.00),
}
FIELDS = ("key_id", "model", "requests", "prompt_tokens", "completion_tokens", "cost_usd")


def chat(gateway, secret: str, model: str, text: str) -> None:
    r = gateway.http.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {secret}"},
        json={"model": model, "messages": [{"role": "user", "content": text}]},
    )
    assert r.status_code == 200, r.text


def cost(model: str, prompt: int, cached: int, completion: int) -> float:
    fresh, cached_rate, out = PRICES[model]
    return ((prompt - cached) * fresh + cached * cached_rate + completion * out) / 1e6


def utc_today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


def test_usage_as_json_csv_and_by_day(gateway) -> None:
    owner = f"payer-{marker()}@example.com"
    a = gateway.create_key(owner=owner)
    b = gateway.create_key(owner=owner)
    days = {utc_today()}
    text = f"price this {marker()}"
    for key, model in [(a, "gpt-4o-mini"), (a, "gpt-4o-mini"), (a, "gpt-4o"), (b, "gpt-4o")]:
        chat(gateway, key["key"], model, text)
    days.add(utc_today())
    prompt, completion = words(text), words(mock_reply(text))

    # JSON, the default grouping (key and model): every row names both.
    rows = gateway.cli_json("usage", "--key", a["id"], "--format", "json")
    assert sorted(r["model"] for r in rows) == ["gpt-4o", "gpt-4o-mini"], rows
    for row in rows:
        assert all(field in row for field in FIELDS), row
        assert row["key_id"] == a["id"]
        requests = row["requests"]
        assert requests == (2 if row["model"] == "gpt-4o-mini" else 1)
        assert (row["prompt_tokens"], row["completion_tokens"]) == (requests * prompt, requests * completion)
        expected = cost(row["model"], row["prompt_tokens"], row["cached_tokens"], row["completion_tokens"])
        # Billed at the table's price, rounded up to the nano.
        assert expected <= row["cost_usd"] < expected + 1e-8, (row, expected)
        assert row["cost_usd"] > 0

    # CSV grouped by model: a header, then one record per model, the same
    # totals as JSON.
    out = gateway.cli("usage", "--owner", owner, "--by", "model", "--format", "csv")
    assert out.returncode == 0, out.stderr
    records = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [r["model"] for r in records] == ["gpt-4o", "gpt-4o-mini"], out.stdout
    assert list(records[0]) == [
        "model", "requests", "errors", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd",
    ]
    as_json = {
        r["model"]: r
        for r in gateway.cli_json("usage", "--owner", owner, "--by", "model", "--format", "json")
    }
    for record in records:
        row = as_json[record["model"]]
        assert row["key_id"] is None and row["owner"] is None
        assert int(record["requests"]) == row["requests"] == 2
        assert int(record["completion_tokens"]) == row["completion_tokens"]
        assert abs(float(record["cost_usd"]) - row["cost_usd"]) < 1e-9

    # By UTC day, one owner: one row holding all four requests.
    daily = gateway.cli_json("usage", "--owner", owner, "--by", "day", "--format", "json")
    assert len(daily) == 1 or len(days) == 2, daily
    assert {r["day"] for r in daily} <= days
    assert sum(r["requests"] for r in daily) == 4
    assert all(r["key_id"] is None and r["model"] is None for r in daily)
    total = sum(r["cost_usd"] for r in daily)
    assert abs(total - sum(r["cost_usd"] for r in as_json.values())) < 1e-9

    # The table names the columns it groups by.
    table = gateway.cli("usage", "--owner", owner, "--by", "owner,day")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header[:3] == ["ORG_ID", "OWNER", "DAY"] and "COST_USD" in header, header
    assert owner in table.stdout

    # A grouping the gateway does not know is refused before anything is sent.
    out = gateway.cli("usage", "--by", "team")
    assert out.returncode != 0 and "team" in out.stderr
