"""Limits through the operator CLI, as the issue's interface names them:
rates, concurrency and budgets on keys and projects, organisation budgets,
prepaid top-ups and owner budgets, read back with `--format json`."""

from __future__ import annotations

from e2e_support import Secret, marker


def limits(view: dict) -> dict:
    return {
        field: view[field]
        for field in ("rpm", "tpm", "max_concurrent", "budget_usd", "budget_period", "budget_alerts")
    }


def test_keys_take_rates_concurrency_and_a_budget(gateway) -> None:
    created = gateway.cli_json(
        "keys", "create", "--name", f"limited-{marker()}", "--rpm", "60", "--tpm", "40000",
        "--max-concurrent", "4", "--budget", "25", "--budget-period", "week",
        "--budget-alerts", "90,50", "--format", "json",
    )
    Secret(created.pop("key"))
    expected = {
        "rpm": 60, "tpm": 40000, "max_concurrent": 4, "budget_usd": 25.0,
        "budget_period": "week", "budget_alerts": [50, 90],
    }
    assert limits(created) == expected
    assert limits(gateway.cli_json("keys", "get", created["id"], "--format", "json")) == expected
    listed = gateway.cli_json("keys", "list", "--format", "json")
    assert limits(next(k for k in listed if k["id"] == created["id"])) == expected

    # A new amount keeps the period; --clear removes limits.
    updated = gateway.cli_json(
        "keys", "update", created["id"], "--rpm", "120", "--budget", "30", "--format", "json"
    )
    assert limits(updated) == {**expected, "rpm": 120, "budget_usd": 30.0}
    cleared = gateway.cli_json(
        "keys", "update", created["id"], "--clear", "tpm,budget", "--format", "json"
    )
    assert limits(cleared) == {
        "rpm": 120, "tpm": None, "max_concurrent": 4, "budget_usd": None,
        "budget_period": None, "budget_alerts": None,
    }

    # The table shows the budget as dollars per period.
    budgeted = gateway.cli_json(
        "keys", "create", "--name", f"budget-{marker()}", "--budget", "12.5", "--format", "json"
    )
    table = gateway.cli("keys", "list")
    assert table.returncode == 0, table.stderr
    assert "BUDGET" in table.stdout.splitlines()[0].split()
    row = next(line for line in table.stdout.splitlines() if budgeted["id"] in line)
    assert "$12.5/month" in row

    # Bad values are refused with a message naming what is wrong.
    out = gateway.cli("keys", "create", "--name", "x", "--rpm", "0")
    assert out.returncode != 0 and "--rpm" in out.stderr
    out = gateway.cli("keys", "create", "--name", "x", "--budget", "5", "--budget-period", "year")
    assert out.returncode != 0 and "month" in out.stderr
    out = gateway.cli("keys", "create", "--name", "x", "--budget", "5", "--budget-alerts", "50,150")
    assert out.returncode != 0 and "400" in out.stderr and "150" in out.stderr
    out = gateway.cli("keys", "update", created["id"], "--budget-period", "day")
    assert out.returncode != 0 and "409" in out.stderr and "budget" in out.stderr


def test_projects_organisations_owners_and_prepaid_balances(gateway) -> None:
    org = gateway.cli_json("orgs", "create", "--name", f"o-{marker()}", "--format", "json")
    assert org["budget_usd"] is None and org["prepaid_usd"] is None
    project = gateway.cli_json(
        "projects", "create", "--name", f"p-{marker()}", "--org", org["id"], "--format", "json"
    )

    updated = gateway.cli_json(
        "projects", "update", project["id"], "--rpm", "600", "--max-concurrent", "16",
        "--budget", "200", "--budget-period", "month", "--format", "json",
    )
    assert limits(updated) == {
        "rpm": 600, "tpm": None, "max_concurrent": 16, "budget_usd": 200.0,
        "budget_period": "month", "budget_alerts": None,
    }
    shown = gateway.cli_json("projects", "show", project["id"], "--format", "json")
    assert limits(shown) == limits(updated)
    cleared = gateway.cli_json(
        "projects", "update", project["id"], "--clear", "rpm", "--format", "json"
    )
    assert cleared["rpm"] is None and cleared["max_concurrent"] == 16

    budgeted = gateway.cli_json(
        "orgs", "update", org["id"], "--budget", "1000", "--budget-period", "month",
        "--budget-alerts", "80,100", "--format", "json",
    )
    assert (budgeted["budget_usd"], budgeted["budget_period"], budgeted["budget_alerts"]) == (
        1000.0, "month", [80, 100],
    )

    # Top-ups add up.
    gateway.cli_json("orgs", "top-up", org["id"], "--usd", "100", "--format", "json")
    topped = gateway.cli_json("orgs", "top-up", org["id"], "--usd", "50.25", "--format", "json")
    assert topped["prepaid_usd"] == 150.25
    shown = gateway.cli_json("orgs", "show", org["id"], "--format", "json")
    assert (shown["budget_usd"], shown["prepaid_usd"]) == (1000.0, 150.25)
    listed = gateway.cli_json("orgs", "list", "--format", "json")
    assert next(o for o in listed if o["id"] == org["id"])["prepaid_usd"] == 150.25
    out = gateway.cli("orgs", "top-up", org["id"], "--usd", "0")
    assert out.returncode != 0 and "400" in out.stderr
    table = gateway.cli("orgs", "show", org["id"])
    assert table.returncode == 0 and "$1000/month" in table.stdout and "$150.25" in table.stdout

    # Owner budgets: one per owner in the organisation, any printable name.
    owner = f"ann-{marker()}@example.com"
    service = "batch/nightly jobs"
    set_ = gateway.cli_json(
        "orgs", "owner-budget", org["id"], owner, "--budget", "40", "--budget-period", "day",
        "--format", "json",
    )
    assert (set_["owner"], set_["budget_usd"], set_["budget_period"]) == (owner, 40.0, "day")
    gateway.cli_json("orgs", "owner-budget", org["id"], service, "--budget", "5", "--format", "json")
    budgets = gateway.cli_json("orgs", "owner-budgets", org["id"], "--format", "json")
    assert {(b["owner"], b["budget_usd"], b["budget_period"]) for b in budgets} == {
        (owner, 40.0, "day"), (service, 5.0, "month"),
    }
    removed = gateway.cli_json("orgs", "owner-budget", org["id"], owner, "--clear", "--format", "json")
    assert removed["deleted"] is True
    budgets = gateway.cli_json("orgs", "owner-budgets", org["id"], "--format", "json")
    assert [b["owner"] for b in budgets] == [service]
    # Either a budget or --clear.
    assert gateway.cli("orgs", "owner-budget", org["id"], owner).returncode != 0

    # Every change is audited.
    actions = {e["action"] for e in gateway.cli_json("audit", "--format", "json")}
    assert {
        "project.update", "organisation.update", "organisation.top_up",
        "owner_budget.set", "owner_budget.remove",
    } <= actions


def test_a_viewer_cannot_set_limits(gateway) -> None:
    viewer = gateway.cli_json(
        "admin-credentials", "create", "--name", f"v-{marker()}", "--role", "viewer", "--owner", "vic",
        "--format", "json",
    )
    secret = Secret(viewer.pop("key"))
    key = gateway.create_key()
    for args in (
        ("keys", "update", key["id"], "--rpm", "5"),
        ("orgs", "top-up", "org_default", "--usd", "1"),
        ("projects", "update", "proj_default", "--rpm", "5"),
    ):
        out = gateway.cli(*args, admin_key=secret)
        assert out.returncode != 0 and "403" in out.stderr, (args, out.stderr)
    gateway.cli_json("admin-credentials", "revoke", viewer["id"], "--format", "json")
