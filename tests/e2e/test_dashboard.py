"""The dashboard over plain HTTP (no browser): sign-in and sessions, CSRF,
roles, the secret shown once, security headers, hostile input. The browser
journey is in test_dashboard_browser.py."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from e2e_support import HTTP_TIMEOUT, Gateway, Secret, marker

CSRF = re.compile(r'name="csrf" value="([A-Za-z0-9_-]+)"')


def browser(gateway: Gateway) -> httpx.Client:
    """A cookie-keeping client that behaves like a same-origin browser."""
    return httpx.Client(
        base_url=gateway.url,
        timeout=HTTP_TIMEOUT,
        follow_redirects=False,
        headers={"sec-fetch-site": "same-origin"},
    )


def sign_in(gateway: Gateway, credential: str) -> httpx.Client:
    client = browser(gateway)
    r = client.post(
        "/dashboard/sign-in",
        data={"credential": credential, "next": "/dashboard/keys"},
        headers={"origin": gateway.url},
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/dashboard/keys"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
    assert credential not in cookie
    return client


def csrf_of(client: httpx.Client, path: str = "/dashboard/keys") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match, "every signed-in page carries a CSRF token"
    return match.group(1)


def admin_credential(gateway: Gateway, role: str, **fields: Any) -> tuple[str, Secret]:
    r = gateway.admin.post(
        "/admin/v1/admin-credentials",
        json={"name": f"{role}-{marker()}", "role": role, "owner": f"{role}-{marker()}", **fields},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return body["id"], Secret(body["key"])


def test_no_session_redirects_every_page_to_sign_in(gateway: Gateway) -> None:
    client = browser(gateway)
    for path in [
        "/dashboard",
        "/dashboard/overview",
        "/dashboard/keys",
        "/dashboard/usage",
        "/dashboard/usage.csv",
        "/dashboard/alerts",
        "/dashboard/audit",
        "/dashboard/providers",
        "/dashboard/overview/series",
        "/dashboard/keys/key_doesnotexist",
    ]:
        r = client.get(path)
        if path == "/dashboard":
            # The bare path first goes to the overview, which then asks for a session.
            r = client.get("/dashboard/overview")
        assert r.status_code == 303, (path, r.status_code)
        assert r.headers["location"].startswith("/dashboard/sign-in?next="), (path, r.headers["location"])
    # Changes without a session are not carried out either.
    key = gateway.create_key()
    r = client.post(f"/dashboard/keys/{key['id']}/revoke", data={"csrf": "x"})
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/sign-in")
    shown = gateway.admin.get(f"/admin/v1/keys/{key['id']}").json()
    assert shown["status"] == "active"
    # htmx requests are told where to go in a header instead.
    r = client.get("/dashboard/overview/live", headers={"hx-request": "true"})
    assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/dashboard/sign-in")
    # A made-up or tampered session cookie is no session.
    client.cookies.set("keygate_session", "A" * 43, path="/dashboard")
    assert client.get("/dashboard/keys").status_code == 303


def test_sign_in_refuses_bad_credentials_and_data_keys(gateway: Gateway) -> None:
    client = browser(gateway)
    page = client.get("/dashboard/sign-in")
    assert page.status_code == 200 and 'name="credential"' in page.text
    data_key = gateway.create_key()
    for bad in ["", "nonsense", data_key["key"], "kg_live_" + "0" * 40, "x" * 10_000]:
        r = client.post("/dashboard/sign-in", data={"credential": bad})
        assert r.status_code in (400, 401), (bad[:12], r.status_code)
        assert "set-cookie" not in r.headers
        assert bad[:20] not in r.text or bad == ""
    # A sign-in started by another site is refused even with a good credential.
    r = client.post(
        "/dashboard/sign-in",
        data={"credential": gateway.admin_key},
        headers={"sec-fetch-site": "cross-site", "origin": "https://evil.example"},
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers
    # Open redirects are not followed: `next` stays inside the dashboard.
    r = client.post("/dashboard/sign-in", data={"credential": gateway.admin_key, "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/overview"


def test_forged_cross_site_post_is_refused(gateway: Gateway) -> None:
    client = sign_in(gateway, gateway.admin_key)
    token = csrf_of(client)
    key = gateway.create_key()
    path = f"/dashboard/keys/{key['id']}/revoke"
    # What a page on another site could send with the victim's cookie:
    # no token, a wrong token, or the right token from another origin.
    # An old browser that sends no Sec-Fetch-Site: Origin decides.
    legacy = httpx.Client(base_url=gateway.url, timeout=HTTP_TIMEOUT, cookies=client.cookies)
    for origin in ("https://evil.example", "null"):
        r = legacy.post(path, data={"csrf": token}, headers={"origin": origin})
        assert r.status_code == 403, origin
    forged = [
        ({}, {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}),
        ({"csrf": "guess"}, {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}),
        ({"csrf": token}, {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}),
        ({"csrf": token}, {"origin": "null", "sec-fetch-site": "cross-site"}),
        ({}, {}),
        ({"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}, {}),
    ]
    for form, headers in forged:
        r = client.post(path, data=form, headers=headers)
        assert r.status_code == 403, (form.keys(), headers, r.status_code)
        assert gateway.admin.get(f"/admin/v1/keys/{key['id']}").json()["status"] == "active"
    # The same request from the dashboard's own page goes through.
    r = client.post(path, data={"csrf": token, "reason": "csrf test"}, headers={"origin": gateway.url})
    assert r.status_code == 303, r.text
    assert gateway.admin.get(f"/admin/v1/keys/{key['id']}").json()["status"] == "revoked"
    # The token travels as a header too (htmx).
    other = gateway.create_key()
    r = client.post(f"/dashboard/keys/{other['id']}/suspend", headers={"x-csrf-token": token})
    assert r.status_code == 303
    assert gateway.admin.get(f"/admin/v1/keys/{other['id']}").json()["status"] == "suspended"


def test_a_viewer_cannot_create_or_revoke(gateway: Gateway) -> None:
    viewer_id, viewer_key = admin_credential(gateway, "viewer")
    client = sign_in(gateway, viewer_key)
    keys_page = client.get("/dashboard/keys")
    assert keys_page.status_code == 200
    assert 'action="/dashboard/keys"' not in keys_page.text.replace('action="/dashboard/keys" class', "")
    assert "Create a key" not in keys_page.text
    token = csrf_of(client)
    before = gateway.admin.get("/admin/v1/keys", params={"limit": 1000}).json()
    r = client.post("/dashboard/keys", data={"csrf": token, "name": f"viewer-{marker()}"})
    assert r.status_code == 403, r.text
    assert "viewer" in r.text
    after = gateway.admin.get("/admin/v1/keys", params={"limit": 1000}).json()
    assert len(after["data"]) == len(before["data"])
    key = gateway.create_key()
    r = client.post(f"/dashboard/keys/{key['id']}/revoke", data={"csrf": token})
    assert r.status_code == 403
    assert gateway.admin.get(f"/admin/v1/keys/{key['id']}").json()["status"] == "active"
    # The refusals are in the audit log as the viewer's.
    audit = gateway.admin.get("/admin/v1/audit", params={"actor": viewer_id}).json()["data"]
    assert {(e["action"], e["status"]) for e in audit} >= {("key.create", 403), ("key.revoke", 403)}


def test_revoking_the_admin_credential_ends_its_sessions(gateway: Gateway) -> None:
    cred_id, cred_key = admin_credential(gateway, "admin")
    client = sign_in(gateway, cred_key)
    assert client.get("/dashboard/keys").status_code == 200
    r = gateway.admin.post(f"/admin/v1/admin-credentials/{cred_id}/revoke")
    assert r.status_code == 200, r.text
    r = client.get("/dashboard/keys")
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/sign-in")


def test_sign_out_ends_the_session(gateway: Gateway) -> None:
    client = sign_in(gateway, gateway.admin_key)
    token = csrf_of(client)
    stolen = dict(client.cookies)
    r = client.post("/dashboard/sign-out", data={"csrf": token})
    assert r.status_code == 303 and "Max-Age=0" in r.headers.get("set-cookie", "")
    replay = browser(gateway)
    for name, value in stolen.items():
        replay.cookies.set(name, value, path="/dashboard")
    assert replay.get("/dashboard/keys").status_code == 303


def test_the_secret_is_shown_once_and_never_again(gateway: Gateway) -> None:
    client = sign_in(gateway, gateway.admin_key)
    token = csrf_of(client)
    name = f"once-{marker()}"
    r = client.post("/dashboard/keys", data={"csrf": token, "name": name, "models": "gpt-*", "rpm": "100"})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    secret = re.search(r'id="secret" class="mono" readonly value="([^"]+)"', r.text)
    assert secret, "the new secret is on the page that created it"
    secret_value = Secret(secret.group(1))
    key_id = re.search(r'<code id="key-id">([^<]+)</code>', r.text).group(1)
    # The secret works.
    reply = gateway.openai(secret_value).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content
    # No later page shows it, nor the admin API.
    for path in [
        f"/dashboard/keys/{key_id}",
        "/dashboard/keys",
        f"/dashboard/keys?q={name}",
        "/dashboard/audit",
        "/dashboard/usage?by=key",
        "/dashboard/overview",
        "/dashboard/alerts",
    ]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert secret_value not in page.text, path
        assert secret_value[-12:] not in page.text, path
    shown = gateway.admin.get(f"/admin/v1/keys/{key_id}").json()
    assert "key" not in shown
    # Rotation shows the new secret once, and only that one.
    r = client.post(f"/dashboard/keys/{key_id}/rotate", data={"csrf": token, "grace": "0s"})
    assert r.status_code == 200, r.text
    rotated = re.search(r'id="secret" class="mono" readonly value="([^"]+)"', r.text).group(1)
    assert rotated != secret_value and secret_value not in r.text
    assert rotated not in client.get(f"/dashboard/keys/{key_id}").text


def test_security_headers_on_every_page(gateway: Gateway) -> None:
    client = sign_in(gateway, gateway.admin_key)
    for path in ["/dashboard/sign-in", "/dashboard/overview", "/dashboard/keys", "/dashboard/usage"]:
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        assert "server-timing" in r.headers
        # No inline script anywhere: every <script> has a src on this origin.
        for tag in re.findall(r"<script[^>]*>", r.text):
            assert 'src="/dashboard/assets/' in tag, tag
        # …and no inline event handler or javascript: URL.
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", r.text), path
        assert "javascript:" not in r.text, path
    asset = client.get("/dashboard/assets/htmx-2.0.11.min.js")
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    assert "immutable" in asset.headers["cache-control"]
    assert client.get("/dashboard/assets/../../admin.key").status_code == 404
    assert client.get("/dashboard/assets/nope.js").status_code == 404


def test_usage_csv_and_chart_data(gateway: Gateway) -> None:
    key = gateway.create_key()
    oai = gateway.openai(key["key"])
    for _ in range(3):
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "count me"}])
    oai.close()
    client = sign_in(gateway, gateway.admin_key)
    r = client.get("/dashboard/usage.csv", params={"by": "key", "range": "24h", "key": key["id"]})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0].startswith("key,requests,errors")
    assert lines[1].startswith(f"{key['id']},3,0,")
    series = client.get("/dashboard/overview/series", params={"metric": "requests", "split": "provider"}).json()
    assert len(series["buckets"]) == 24
    assert sum(sum(line["values"]) for line in series["lines"]) >= 3


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/usage?by=nonsense",
        "/dashboard/usage?since=yesterday",
        "/dashboard/usage?since=2026-01-02&until=2026-01-01",
        "/dashboard/usage?since=1900-01-01&until=2900-01-01",
        "/dashboard/usage?page=-1",
        "/dashboard/usage?by=" + "key," * 50,
        "/dashboard/keys?after=%00%ff" + "x" * 600,
        "/dashboard/keys?sort=%27;DROP%20TABLE%20keys;--&state=%3Cscript%3E",
        "/dashboard/keys?q=" + "%25_" * 100,
        "/dashboard/keys/..%2F..%2Fadmin",
        "/dashboard/keys/" + "k" * 5000,
        "/dashboard/audit?before=notanumber",
        "/dashboard/overview/series?range=%00&split=%ff&metric=<x>",
    ],
)
def test_hostile_queries_get_clear_answers(gateway: Gateway, path: str) -> None:
    client = sign_in(gateway, gateway.admin_key)
    r = client.get(path)
    assert r.status_code < 500, (path, r.status_code)
    assert "<script>" not in r.text


def test_hostile_forms_get_clear_answers(gateway: Gateway) -> None:
    client = sign_in(gateway, gateway.admin_key)
    token = csrf_of(client)
    key = gateway.create_key()
    cases = [
        ("/dashboard/keys", {"csrf": token}),
        ("/dashboard/keys", {"csrf": token, "name": "x", "rpm": "-5"}),
        ("/dashboard/keys", {"csrf": token, "name": "x", "budget_usd": "NaN"}),
        ("/dashboard/keys", {"csrf": token, "name": "<script>alert(1)</script>", "models": "[" * 300}),
        ("/dashboard/keys", {"csrf": token, "name": "x", "env": "production\r\nSet-Cookie: a=b"}),
        (f"/dashboard/keys/{key['id']}", {"csrf": token, "section": "nothing"}),
        (f"/dashboard/keys/{key['id']}", {"csrf": token, "section": "limits", "rpm": "9" * 40}),
        (f"/dashboard/keys/{key['id']}", {"csrf": token, "section": "access", "allow_ips": "not-a-network"}),
        (f"/dashboard/keys/{key['id']}/rotate", {"csrf": token, "grace": "forever"}),
        ("/dashboard/keys/key_nosuchkey/revoke", {"csrf": token}),
    ]
    for path, form in cases:
        r = client.post(path, data=form)
        assert 400 <= r.status_code < 500, (path, form, r.status_code, r.text[:300])
        assert "<script>alert" not in r.text
    # Oversized and truncated bodies.
    r = client.post("/dashboard/keys", content=b"csrf=" + token.encode() + b"&name=" + b"x" * 200_000,
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    # A truncated escape decodes to U+FFFD (as browsers send it): a clear
    # answer either way, never a failure.
    r = client.post("/dashboard/keys", content=b"csrf=" + token.encode() + b"&name=%E2%8",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code < 500
    r = client.post("/dashboard/keys", content=b'{"name":"json"}', headers={"content-type": "application/json", "x-csrf-token": token})
    assert 400 <= r.status_code < 500
    assert gateway.admin.get(f"/admin/v1/keys/{key['id']}").json()["status"] == "active"
