"""The README's walk-through, pasted one line after another (no sleeps), against the running services.

Every command of the ```bash block under "A walk through the API" runs as written (curl, in bash), with the
README's localhost ports pointed at this session's services and ``LEAD=<the lead_id>`` filled in as a reader
does; each answer is checked against what the README says it is. A change to the walk-through that this test
does not know about fails it, so the README and the test stay one.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README_PORTS = {"8001": "intake", "8002": "assignment", "8003": "followup", "8004": "analytics"}
VARIABLES = ("REP", "MGR", "LEAD", "BEFORE")


def walkthrough() -> list[str]:
    """The block's commands, continuation lines joined, comments and blank lines left out."""
    section = ROOT.joinpath("README.md").read_text(encoding="utf-8").split("## A walk through the API", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    commands, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        commands.append(pending + line)
        pending = ""
    return commands


class Shell:
    """Runs one pasted line at a time in bash, carrying the walk-through's variables from line to line."""

    def __init__(self, services) -> None:
        self.services = services
        self.env = {k: v for k, v in services.env.items() if not k.startswith("LEADFLOW_") or k == "LEADFLOW_JWT_SECRET"}

    def paste(self, command: str) -> str:
        for port, service in README_PORTS.items():
            command = command.replace(f"localhost:{port}", self.services.url(service).removeprefix("http://"))
        report = "".join(f'printf "%s=%s\\037" {name} "${name}"; ' for name in VARIABLES)
        script = f"{command}\nprintf '\\036'; {report}"
        done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        answer, _, variables = done.stdout.partition("\x1e")
        for pair in filter(None, variables.split("\x1f")):
            name, _, value = pair.partition("=")
            if value:
                self.env[name] = value
        return answer

    def json(self, command: str) -> dict:
        answer = self.paste(command)
        try:
            return json.loads(answer)
        except json.JSONDecodeError:
            raise AssertionError(f"{command}\nanswered: {answer!r}") from None


def test_the_readme_walk_through_pasted_line_by_line_answers_as_it_says(services):
    commands = walkthrough()
    shape = [re.sub(r"\s+", " ", c).split(" -H")[0] for c in commands]
    assert len(commands) == 13, shape
    tokens, capture, claim, mine, pool, follow_up, tasks, before, release, now, then, funnel = (
        commands[0],
        commands[1],
        *commands[3:],
    )
    assert commands[2] == "LEAD=<the lead_id>"
    shell = Shell(services)

    shell.paste(tokens)
    assert shell.env["REP"].count(".") == 2 and shell.env["MGR"].count(".") == 2

    captured = shell.json(capture)
    assert set(captured) >= {"lead_id", "score", "grade"}, captured
    lead = captured["lead_id"]
    shell.paste(f"LEAD={lead}")  # what the reader types, having read the answer

    # No sleep anywhere below: each service waits for what it has not consumed yet, and lists reflect commands.
    claimed = shell.json(claim)
    assert (claimed["lead_id"], claimed["rep_id"], claimed["how"], claimed["stage"]) == (lead, "rep-1", "claim", "assigned")
    assert claimed["protected_until"]
    listed = {item["lead_id"]: item for item in shell.json(mine)["items"]}
    assert listed[lead]["owner"] == "rep-1" and listed[lead]["stage"] == "assigned"
    assert lead not in {item["lead_id"] for item in shell.json(pool)["items"]}

    logged = shell.json(follow_up)
    assert (logged["lead_id"], logged["stage"]) == (lead, "qualified") and logged["follow_up_id"]
    open_tasks = [t for t in shell.json(tasks)["items"] if t["lead_id"] == lead]
    assert {(t["kind"], t["due_at"], t["status"]) for t in open_tasks} >= {
        ("agreed_follow_up", "2030-01-01T09:00:00Z", "open")
    }, open_tasks

    assert shell.paste(before) == "" and shell.env["BEFORE"].endswith("Z")
    released = shell.json(release)
    assert (released["lead_id"], released["rep_id"], released["reason"]) == (lead, "rep-1", "manual")

    view = shell.json(now)
    assert (view["lead_id"], view["stage"], view["owner"], view["source"]) == (lead, "new", None, "trade_show")
    assert view["captured_at"] and view["profile"]["name"] == "王芳"
    assert [(o["rep_id"], o["how"], o["release_reason"]) for o in view["ownership_history"]] == [("rep-1", "claim", "manual")]
    assert [(f["rep_id"], f["stage"]) for f in view["follow_ups"]] == [("rep-1", "qualified")]
    assert [s["stage"] for s in view["stage_history"]] == ["new", "assigned", "qualified", "new"]

    past = shell.json(then)
    assert (past["stage"], past["owner"]["rep_id"], past["owner"]["released_at"]) == ("qualified", "rep-1", None)
    assert len(past["follow_ups"]) == 1

    groups = {group["key"]: group for group in shell.json(funnel)["groups"]}
    assert groups["trade_show"]["leads"] >= 1 and groups["trade_show"]["stages"][0]["stage"] == "new"
