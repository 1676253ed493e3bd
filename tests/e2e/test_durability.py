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
