"""`make demo` seeds through the real APIs: the organisation in the directory, leads captured, claimed and worked."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import auth, eventually


def test_the_demo_seeds_an_organisation_and_worked_leads(services):
    done = services.run("services.console.demo", "--leads", "12", "--seed", "7", timeout=240)
    assert done.returncode == 0, done.stderr
    assert "12 leads captured" in done.stdout and "sign in at" in done.stdout
    listed = services.run("services.console", "users", "list").stdout
    for username in ("admin", "mgr-east", "mgr-west", "wang.fang", "sun.li"):
        assert username in listed

    def worked() -> bool:
        url = f"{services.url('assignment')}/reps/wang.fang/leads"
        leads = httpx.get(url, headers=auth("manager", "mgr-east")).json()["items"]
        return bool(leads) and any(lead["stage"] not in ("new", "assigned") for lead in leads)

    eventually(worked, timeout=30)
