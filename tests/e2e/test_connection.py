"""HTTP/1.1 connection handling at the edges: early refusals on keep-alive
connections, and garbage on the wire."""

from __future__ import annotations

import json

import pytest

from e2e_support import RawHttp, marker, mock_reply


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages"])
def test_early_refusal_keeps_the_connection_usable_or_says_close(gateway, key, route) -> None:
    """A request refused before its body is read (here: no credential) must
    leave the keep-alive connection usable, or announce `Connection: close`.
    Closing it silently makes a client's next pooled request fail with
    "server disconnected" (the SDKs then retry, or raise APIConnectionError
    with retries off) whenever the body had not fully arrived when the
    gateway answered.

    Here the body is sent only after the early 401 has arrived, which is the
    losing case of that race, every time. (A gateway that drains the body in
    the background after answering, or says `Connection: close`, passes.)"""
    body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}).encode()
    conn = RawHttp(gateway.url)
    try:
        conn.send(
            b"POST %s HTTP/1.1\r\nHost: keygate\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (route.encode(), len(body))
        )
        first = conn.read_response()
        assert first is not None and first[0] == 401
        if first[1].get("connection", "").lower() == "close":
            return  # announced: the client will not reuse it
        try:
            conn.send(body)
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: keygate\r\n\r\n")
            second = conn.read_response()
        except (BrokenPipeError, ConnectionResetError):
            second = None
        assert second is not None, (
            "the gateway closed a keep-alive connection after an early 401 without 'Connection: close'"
        )
        assert second[0] == 200
    finally:
        conn.close()


def test_garbage_on_the_wire_gets_400_and_the_gateway_keeps_serving(gateway, key) -> None:
    for garbage in [b"GARBAGE\r\n\r\n", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64]:
        conn = RawHttp(gateway.url)
        try:
            conn.send(garbage)
            response = conn.read_response()
        finally:
            conn.close()
        # A 400, or a closed connection: never a 5xx, never a hang.
        assert response is None or response[0] == 400, response
    assert gateway.proc.alive()
    text = f"still alive {marker()}"
    with gateway.openai(key["key"]) as client:
        assert client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        ).choices[0].message.content == mock_reply(text)
