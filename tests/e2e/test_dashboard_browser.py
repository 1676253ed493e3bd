"""The dashboard in a real browser: Debian's headless Chromium driven by
Playwright. One journey: sign in, create a key and copy its secret, use it
through the gateway, watch the usage appear live on the overview and in the
usage explorer, rotate it, revoke it, and find all of it in the audit log.
Screenshots of every page are saved as artifacts (KEYGATE_E2E_ARTIFACTS,
default target/e2e-artifacts/dashboard)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest

from e2e_support import Gateway, Secret, Spawner, marker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("KEYGATE_E2E_ARTIFACTS", Path(__file__).resolve().parents[2] / "target" / "e2e-artifacts")
) / "dashboard"
# axe-core (npm, installed by scripts/test) checks each page against WCAG
# 2 A/AA: labels, contrast, names, structure.
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
# How long the browser waits for an element or a live update (an upper
# bound on waiting for an event, not a sleep).
WAIT_MS = 20_000

sync_api = pytest.importorskip("playwright.sync_api")
sync_api.expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed; scripts/test installs it")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture
def dash(spawn: Spawner) -> Gateway:
    return spawn.gateway("sqlite", name="dashboard-browser")


class Page:
    """A browser tab that fails the test on any console error (a CSP
    violation shows up there) and labels its screenshots."""

    def __init__(self, browser: Any, base_url: str):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.context = browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 1000})
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        # An init script, so the page's own Content-Security-Policy (no
        # inline script) stays on for everything the page itself runs.
        assert AXE.exists(), "axe-core is missing; scripts/test installs it (npm ci --prefix tests/e2e)"
        self.context.add_init_script(path=str(AXE))
        self.violations: dict[str, Any] = {}
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.shots: list[str] = []

    def shot(self, name: str) -> None:
        found = self.page.evaluate(
            """async () => (await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}}))
                 .violations.map(v => ({id: v.id, impact: v.impact,
                                        nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
        )
        if found:
            self.violations[name] = found
        path = ARTIFACTS / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path.name)

    def every_field_is_labelled(self) -> None:
        unlabelled = self.page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                 .map(e => e.name || e.id)"""
        )
        assert unlabelled == [], f"fields without a label: {unlabelled}"


def test_the_dashboard_journey_in_chromium(chromium: Any, dash: Gateway) -> None:
    expect = sync_api.expect
    tab = Page(chromium, dash.url)
    page = tab.page

    # Sign in (a wrong credential first).
    page.goto("/dashboard/keys")
    expect(page).to_have_url(re.compile(r".*/dashboard/sign-in.*"))
    page.get_by_label("Admin credential").fill("not-a-credential")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_be_visible()
    tab.shot("sign-in-refused")
    # The refused sign-in's own 401 is the only console error expected.
    assert all("401" in e for e in tab.errors), tab.errors
    tab.errors.clear()
    page.get_by_label("Admin credential").fill(dash.admin_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r".*/dashboard/keys$"))
    cookies = tab.context.cookies()
    session = [c for c in cookies if c["name"].endswith("keygate_session")]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    tab.every_field_is_labelled()

    # The overview, before any traffic, stays open: its figures update live.
    overview = tab.context.new_page()
    overview.set_default_timeout(WAIT_MS)
    overview.on("console", lambda m: m.type == "error" and tab.errors.append(m.text))
    overview.goto("/dashboard/overview")
    requests_tile = overview.locator('[data-tile="Requests, last 24 h"]')
    expect(requests_tile).to_have_text("0")

    # Create a key; copy its secret with the button.
    name = f"browser-{marker()}"
    page.goto("/dashboard/keys")
    page.locator("#create-key summary").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Models").fill("gpt-*, claude-*")
    page.get_by_label("Budget (USD)").fill("50")
    tab.shot("keys-create-form")
    page.locator("#create-submit").click()
    expect(page.locator("h1")).to_have_text("Key created")
    shown = page.locator("#secret").input_value()
    assert shown.startswith("kg_live_")
    page.locator("#copy-secret").click()
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    copied = Secret(page.evaluate("navigator.clipboard.readText()"))
    assert copied == shown
    key_id = page.locator("#key-id").inner_text()
    page.eval_on_selector("#secret", "e => { e.value = '(hidden for the screenshot)' }")
    tab.shot("key-created-secret-shown-once")

    # Use it through the gateway with the official SDK.
    client = openai.OpenAI(api_key=copied, base_url=f"{dash.url}/v1", max_retries=0, timeout=30)
    for i in range(5):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"dashboard request {i}"}]
        )
        assert reply.choices[0].message.content
    client.close()

    # The overview picks the requests up without a reload (htmx polling).
    expect(requests_tile).to_have_text("5")
    # The chart redraws when a control changes (and by itself every 15 s).
    overview.get_by_label("Show").select_option("requests")
    expect(overview.locator("#chart")).to_have_attribute("data-lines", "1")
    expect(overview.locator("#chart canvas").first).to_be_attached()
    expect(overview.locator("#chart-table")).to_contain_text("openai")
    tab.page = overview
    tab.shot("overview-live")
    tab.every_field_is_labelled()
    tab.page = page

    # The keys list shows it, with its month's spend.
    page.goto(f"/dashboard/keys?q={name}")
    row = page.locator(f'tr[data-key="{key_id}"]')
    expect(row).to_contain_text(name)
    expect(row).to_contain_text("active")
    tab.shot("keys-list")

    # The usage explorer, and its CSV export.
    page.goto(f"/dashboard/usage?by=key&range=24h&key={key_id}")
    table = page.locator("#usage-table tbody tr").first
    expect(table).to_contain_text(key_id)
    expect(table.locator("td").nth(1)).to_have_text("5")
    tab.every_field_is_labelled()
    tab.shot("usage-explorer")
    with page.expect_download() as download:
        page.locator("#csv").click()
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[1].startswith(f"{key_id},5,0,")

    # Rotate with no grace: the new secret is shown once, the old one dies.
    page.goto(f"/dashboard/keys/{key_id}")
    tab.shot("key-details")
    page.get_by_label("Old secret keeps working for").select_option("0s")
    page.locator("#rotate").click()
    expect(page.locator("h1")).to_have_text("Key rotated")
    rotated = Secret(page.locator("#secret").input_value())
    assert rotated != copied
    page.eval_on_selector("#secret", "e => { e.value = '(hidden for the screenshot)' }")
    tab.shot("key-rotated")
    old = openai.OpenAI(api_key=copied, base_url=f"{dash.url}/v1", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError):
        old.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "old"}])
    old.close()
    new = openai.OpenAI(api_key=rotated, base_url=f"{dash.url}/v1", max_retries=0, timeout=30)
    assert new.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "new"}]).choices

    # Revoke (the page asks first), and the key is refused at once.
    page.goto(f"/dashboard/keys/{key_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_label("Reason").fill("dashboard test")
    page.locator("#revoke").click()
    expect(page.locator("#notice")).to_contain_text("revoked")
    tab.shot("key-revoked")
    with pytest.raises(openai.AuthenticationError):
        new.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "after"}])
    new.close()

    # The audit log names every step, by the signed-in credential.
    page.goto(f"/dashboard/audit?target={key_id}")
    audit = page.locator("#audit-table")
    for action in ("key.revoke", "key.rotate"):
        expect(audit).to_contain_text(action)
    tab.shot("audit-log")
    page.goto("/dashboard/audit?action=key.create")
    expect(page.locator("#audit-table")).to_contain_text(key_id)

    # The remaining pages render.
    page.goto("/dashboard/alerts")
    expect(page.locator("h1")).to_have_text("Alerts")
    tab.shot("alerts")
    page.goto("/dashboard/providers")
    expect(page.locator("#providers-table")).to_contain_text("openai")
    tab.shot("providers")

    # Keyboard: the first Tab reaches the skip link, Enter follows it.
    page.goto("/dashboard/keys")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    # Sign out (the overview tab first, so its polling stops): the pages ask
    # for a sign-in again.
    overview.close()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r".*/dashboard/sign-in.*"))
    page.goto("/dashboard/overview")
    expect(page).to_have_url(re.compile(r".*/dashboard/sign-in.*"))

    assert tab.errors == [], f"browser console errors (CSP violations included): {tab.errors}"
    assert tab.violations == {}, f"accessibility (axe-core, WCAG 2 A/AA) violations: {tab.violations}"
    (ARTIFACTS / "screenshots.txt").write_text("\n".join(tab.shots) + "\n")
    tab.context.close()
