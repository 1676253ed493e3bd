"""`GET /metrics` of a real gateway: scraped with the scrape token
(KEYGATE_METRICS_TOKEN) or an admin credential, refused without; parsed with
the official Prometheus client's parser; its counters agree with what the
SDK sent and with the ledger (`keygate usage`)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e_support import Secret, assert_openai_error, marker, well_formed_unknown_key

CHAT = "/v1/chat/completions"


@pytest.fixture
def metered(spawn) -> tuple[Any, Secret]:
    token = Secret(secrets.token_urlsafe(32))
    gw = spawn.gateway("sqlite", extra_env={"KEYGATE_METRICS_TOKEN": token})
    return gw, token


def scrape(gw, bearer: str) -> tuple[str, dict[str, Any]]:
    r = gw.http.get("/metrics", headers={"authorization": f"Bearer {bearer}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    return r.text, families


def samples(families: dict[str, Any], family: str, suffix: str = "", **labels: str) -> list[Any]:
    return [
        s
        for s in families[family].samples
        if s.name == family + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def total(families: dict[str, Any], family: str, suffix: str = "", **labels: str) -> float:
    return sum(s.value for s in samples(families, family, suffix, **labels))


def test_metrics_agree_with_what_was_sent_and_with_the_ledger(metered) -> None:
    gw, token = metered
    key = gw.create_key(models=["gpt-4o-mini", "gpt-4o"])
    poor = gw.create_key(budget_usd=0.000001, budget_period="month")
    client = gw.openai(key["key"])
    try:
        for model in ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o"]:
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"count {marker()}"}]
            )
            assert reply.usage.total_tokens > 0
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"stream {marker()}"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.chat.completions.create(
                model="claude-3-5-haiku-latest", messages=[{"role": "user", "content": "hi"}]
            )
        assert denied.value.code == "model_not_allowed"
    finally:
        client.close()
    with gw.openai(well_formed_unknown_key()) as stranger:
        with pytest.raises(openai.AuthenticationError) as unknown:
            stranger.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "invalid_api_key"
    with gw.openai(poor["key"]) as broke:
        with pytest.raises(openai.APIStatusError) as budget:
            broke.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert budget.value.status_code == 402 and budget.value.code == "budget_exceeded"

    # Who may scrape: the token, an admin credential; nobody else.
    assert_openai_error(gw.http.get("/metrics"), 401)
    assert_openai_error(gw.http.get("/metrics", headers={"authorization": "Bearer " + "x" * 40}), 401)
    assert_openai_error(gw.http.get("/metrics", headers={"authorization": f"Bearer {key['key']}"}), 403)
    _, by_admin = scrape(gw, gw.admin_key)
    assert "keygate_requests" in by_admin
    text, families = scrape(gw, token)

    # The client library strips `_total` from counter family names.
    assert total(families, "keygate_requests", "_total", route=CHAT) == 7
    assert total(families, "keygate_requests", "_total", route=CHAT, status="200") == 4
    assert total(families, "keygate_requests", "_total", status="200", model="gpt-4o-mini") == 3
    assert total(families, "keygate_requests", "_total", status="200", model="gpt-4o") == 1
    assert total(families, "keygate_requests", "_total", status="401", provider="none") == 1
    assert total(families, "keygate_requests", "_total", status="403") == 1
    assert total(families, "keygate_requests", "_total", status="402") == 1
    for reason in ("invalid_api_key", "model_not_allowed", "budget_exceeded"):
        assert total(families, "keygate_refusals", "_total", reason=reason) == 1, reason

    # Histograms: cumulative buckets, +Inf equal to the count, 1 ms … 60 s.
    duration = families["keygate_request_duration_seconds"]
    assert duration.type == "histogram"
    series: dict[tuple, dict[str, Any]] = {}
    for s in duration.samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = series.setdefault(labels, {"buckets": []})
        if s.name.endswith("_bucket"):
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            entry["count"] = s.value
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
    assert series
    observed = 0.0
    for labels, entry in series.items():
        bounds = sorted(entry["buckets"])
        assert bounds[0][0] == 0.001 and 60.0 in [b for b, _ in bounds], labels
        assert bounds[-1][0] == float("inf")
        counts = [c for _, c in bounds]
        assert counts == sorted(counts), labels
        assert counts[-1] == entry["count"], labels
        assert entry["sum"] >= 0
        observed += entry["count"]
    assert observed == 7

    # Tokens and spend: positive, and equal to the ledger's per model.
    rows = gw.cli_json("usage", "--by", "model", "--format", "json")
    by_model = {r["model"]: r for r in rows if r.get("model")}
    for model in ("gpt-4o-mini", "gpt-4o"):
        row = by_model[model]
        labels = {"provider": "openai", "model": model}
        prompt = total(families, "keygate_prompt_tokens", "_total", **labels)
        completion = total(families, "keygate_completion_tokens", "_total", **labels)
        cached = total(families, "keygate_cached_prompt_tokens", "_total", **labels)
        spend = total(families, "keygate_spend_usd", "_total", **labels)
        assert prompt > 0 and completion > 0 and spend > 0, model
        assert (prompt, completion, cached) == (
            row["prompt_tokens"],
            row["completion_tokens"],
            row.get("cached_tokens", 0),
        ), (model, row)
        assert abs(spend - row["cost_usd"]) < 1e-9, (model, spend, row)

    # State: providers healthy, build info, the ledger caught up (the
    # `keygate usage` above flushed it).
    assert total(families, "keygate_upstream_healthy", provider="openai") == 1
    assert total(families, "keygate_upstream_key_healthy", provider="openai", key="0") == 1
    assert total(families, "keygate_build_info") == 1
    assert "keygate_ledger_pending_events" in families
    assert "keygate_ledger_oldest_pending_age_seconds" in families

    # Never a credential, its id or a client address.
    for secret in (key["id"], poor["id"], key["key"], poor["key"], token, gw.admin_key):
        assert secret not in text
    assert "127.0.0.1" not in text


def test_metrics_refuse_hostile_input_with_4xx(metered) -> None:
    gw, token = metered
    auth = {"authorization": f"Bearer {token}"}
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = gw.http.request(method, "/metrics", headers=auth)
        assert r.status_code == 405, (method, r.status_code)
    for headers in (
        {"authorization": "Bearer " + "a" * 100_000},
        {"authorization": "Basic Zm9vOmJhcg=="},
        {"authorization": "Bearer"},
        {"x-api-key": "kg_live_" + "0" * 30},
    ):
        try:
            r = gw.http.get("/metrics", headers=headers)
        except httpx.RemoteProtocolError:
            continue  # the server may close on an oversized head
        assert 400 <= r.status_code < 500, r.status_code
    for query in ("token=" + token, "api_key=x", "key=kg_live_x"):
        assert_openai_error(gw.http.get(f"/metrics?{query}", headers=auth), 401, "credential_in_query")
    for query in ("a=%00%ff", "name[]=1&&=", "format=protobuf"):
        assert gw.http.get(f"/metrics?{query}", headers=auth).status_code == 200, query
    assert gw.http.get("/metrics/extra", headers=auth).status_code == 404
