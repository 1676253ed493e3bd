"""SIGKILL durability (task 8): every response a client received in full is
in the ledger after the gateway is killed with SIGKILL and restarted."""

from __future__ import annotations

import json
import os
import signal
import threading

import httpx

from e2e_support import marker

CLIENTS = 8
REQUESTS_PER_CLIENT = 40
KILL_AFTER = 120  # complete responses, counted across all clients


def test_sigkill_loses_no_completed_response(spawn, backend) -> None:
    gw = spawn.gateway(backend, name=f"durability-{backend}")
    k = gw.create_key()
    url = gw.url
    pid = gw.proc.pid

    lock = threading.Lock()
    completed: dict[str, bool] = {}  # request id -> streamed
    killed = threading.Event()

    def record(rid: str, streamed: bool) -> None:
        with lock:
            completed[rid] = streamed
            if len(completed) == KILL_AFTER and not killed.is_set():
                # The trigger is an event (the N-th complete response), not a delay.
                os.kill(pid, signal.SIGKILL)
                killed.set()

    def client(n: int) -> None:
        headers = {"authorization": f"Bearer {k['key']}"}
        with httpx.Client(base_url=url, timeout=30.0) as http:
            for i in range(REQUESTS_PER_CLIENT):
                streamed = (n + i) % 2 == 0
                body = {"model": "gpt-4o-mini" if i % 3 else "claude-haiku-4-5",
                        "messages": [{"role": "user", "content": f"load {n} {i} {marker()}"}]}
                route = "/v1/messages" if body["model"].startswith("claude") else "/v1/chat/completions"
                if route == "/v1/messages":
                    body["max_tokens"] = 32
                try:
                    if streamed:
                        body["stream"] = True
                        terminal = "message_stop" if route == "/v1/messages" else "[DONE]"
                        with http.stream("POST", route, json=body, headers=headers) as r:
                            if r.status_code != 200:
                                return
                            rid = r.headers["x-request-id"]
                            complete = False
                            for line in r.iter_lines():
                                if line.startswith("data:") and terminal in line:
                                    complete = True
                            if complete:
                                record(rid, True)
                    else:
                        r = http.post(route, json=body, headers=headers)
                        if r.status_code != 200:
                            return
                        r.json()  # the whole JSON body arrived
                        record(r.headers["x-request-id"], False)
                except (httpx.HTTPError, json.JSONDecodeError):
                    return  # the gateway is gone: this client stops

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert killed.is_set(), f"only {len(completed)} responses completed before the clients stopped"
    # The kill landed mid-run: not every request had completed.
    assert len(completed) < CLIENTS * REQUESTS_PER_CLIENT
    gw.proc.popen.wait(timeout=10)
    assert gw.proc.popen.returncode == -signal.SIGKILL
    gw.kill9()  # reap the process group and close handles

    gw.start()  # same data dir, same database, same secret
    rows = {r["request_id"]: r for r in gw.events(k["id"])}
    missing = [rid for rid in completed if rid not in rows]
    assert not missing, f"{len(missing)} of {len(completed)} fully received responses are not in the ledger"
    for rid, streamed in completed.items():
        assert rows[rid]["status"] == 200, rows[rid]
        assert rows[rid]["streamed"] is streamed
        assert rows[rid]["completion_tokens"] > 0
    assert len(completed) >= KILL_AFTER


# Exact prices: free input, $1,000 per million output tokens; every request
# asks for 5 output tokens, which the mock always fills, so each costs
# exactly $0.005 and its reservation is exact.
EXACT_PRICES = json.dumps({"gpt-4o-mini": {"input": 0, "cached_input": 0, "output": 1000}})
REQUEST_NANOS = 5_000_000
BUDGET_REQUESTS = 40


def test_sigkill_under_budgeted_load_keeps_spend_and_releases_reservations(
    spawn, backend, logs_dir
) -> None:
    """Streams hold budget reservations when the gateway is killed; after
    the restart, every fully received response is in the ledger, the budget
    starts from the ledger's spend, and none of the killed requests'
    reservations blocks it: exactly the rest of the budget is admitted."""
    from e2e_support import MockProvider

    # A slow stream (5 chunks, 40 ms apart) keeps requests in flight.
    slow = MockProvider(logs_dir, ["--chunk-delay-ms", "40"], name="mock-slow")
    try:
        gw = spawn.gateway(
            backend,
            name=f"budget-durability-{backend}",
            extra_env={
                "OPENAI_BASE_URL": f"{slow.url}/v1",
                "KEYGATE_PRICES": EXACT_PRICES,
            },
        )
        k = gw.create_key(budget_usd=BUDGET_REQUESTS * 0.005, budget_period="total")
        url, pid = gw.url, gw.proc.pid
        lock = threading.Lock()
        completed: set[str] = set()
        in_flight = [0]
        killed = threading.Event()

        def maybe_kill() -> None:
            # Called under the lock. The trigger is an event: enough complete
            # responses, with others admitted and still streaming.
            if len(completed) >= 12 and in_flight[0] >= 3 and not killed.is_set():
                os.kill(pid, signal.SIGKILL)
                killed.set()

        def client(n: int) -> None:
            headers = {"authorization": f"Bearer {k['key']}"}
            with httpx.Client(base_url=url, timeout=30.0) as http:
                for i in range(20):
                    body = {"model": "gpt-4o-mini", "max_tokens": 5, "stream": True,
                            "messages": [{"role": "user", "content": f"load {n} {i} {marker()}"}]}
                    try:
                        with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
                            if r.status_code != 200:
                                return
                            rid = r.headers["x-request-id"]
                            with lock:
                                in_flight[0] += 1
                                maybe_kill()
                            done = any("[DONE]" in line for line in r.iter_lines())
                            with lock:
                                in_flight[0] -= 1
                                if done:
                                    completed.add(rid)
                                maybe_kill()
                    except httpx.HTTPError:
                        return  # the gateway is gone

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        assert killed.is_set(), f"only {len(completed)} streams completed"
        gw.proc.popen.wait(timeout=10)
        gw.kill9()

        gw.start()
        rows = {r["request_id"]: r for r in gw.events(k["id"])}
        missing = [rid for rid in completed if rid not in rows]
        assert not missing, f"{len(missing)} fully received streams are not in the ledger"
        assert all(rows[rid]["cost_nanos"] == REQUEST_NANOS for rid in completed)
        spent = sum(r["cost_nanos"] for r in rows.values())
        assert spent % REQUEST_NANOS == 0
        left = BUDGET_REQUESTS - spent // REQUEST_NANOS
        assert 0 < left <= BUDGET_REQUESTS - len(completed)

        # Everything the ledger did not spend is available again, no more.
        headers = {"authorization": f"Bearer {k['key']}"}
        body = {"model": "gpt-4o-mini", "max_tokens": 5,
                "messages": [{"role": "user", "content": "after the restart"}]}
        for i in range(left):
            r = gw.http.post("/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == 200, f"request {i} of {left}: {r.text}"
        r = gw.http.post("/v1/chat/completions", json=body, headers=headers)
        assert r.status_code == 402, r.text
        assert r.json()["error"]["code"] == "budget_exceeded"
    finally:
        slow.stop()
