"""``make demo``: a realistic organisation and a few hundred leads with follow-ups, through the real APIs.

Two teams with a manager each and three reps each, an admin; leads captured through intake's batch API,
claimed through assignment as the reps, worked through followup as their owners (some won, some lost).
People go into the directory as the CLI adds them. Run against the services `make up` started; prints how to sign in.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx

from services.console import SERVICE
from services.console.app import DirectoryApplication
from services.console.config import ConsoleSettings
from services.console.domain import Profile, UsernameTaken
from shared.auth import mint_token
from shared.eventstore import ensure_schema, eventsourcing_env

PASSWORD = "leadflow-demo"
TEAMS = {
    "east": ("mgr-east", "周敏", [("wang.fang", "王芳"), ("li.lei", "李雷"), ("chen.jing", "陈静")]),
    "west": ("mgr-west", "赵强", [("liu.yang", "刘洋"), ("zhang.wei", "张伟"), ("sun.li", "孙丽")]),
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平"]
COMPANIES = [
    "华东制造",
    "西南电子",
    "北方物流",
    "南粤贸易",
    "长江化工",
    "中原农业",
    "滨海科技",
    "天府软件",
    "燕京医疗",
    "江南纺织",
]
INDUSTRIES = ["manufacturing", "electronics", "logistics", "retail", "software", "healthcare"]
REGIONS = ["east", "west", "north", "south"]
SOURCES = ["web_form", "trade_show", "referral", "search_ads"]
TITLES = ["采购总监", "IT 经理", "总经理", "运营主管", "财务经理"]


def people(directory: DirectoryApplication) -> None:
    now = datetime.now(UTC)
    wanted = [Profile.of(username="admin", role="admin", display_name="系统管理员")]
    for team, (manager, manager_name, reps) in TEAMS.items():
        wanted.append(Profile.of(username=manager, role="manager", team=team, display_name=manager_name))
        wanted += [Profile.of(username=u, role="rep", team=team, manager=manager, display_name=n) for u, n in reps]
    for profile in wanted:
        # A second run keeps the people it made the first time.
        with contextlib.suppress(UsernameTaken):
            directory.add(profile, PASSWORD, now, "demo")


def retried(call, attempts: int = 40) -> httpx.Response:
    """Each service learns of a lead from the topic: a claim or a follow-up may have to wait a moment for it."""
    response = call()
    for _ in range(attempts):
        if response.status_code not in (403, 404, 409):
            break
        time.sleep(0.25)
        response = call()
    return response


def run(settings: ConsoleSettings, leads: int, seed: int) -> None:
    rng = random.Random(seed)
    ensure_schema(settings, SERVICE)
    directory = DirectoryApplication(eventsourcing_env(settings, SERVICE))
    try:
        people(directory)
    finally:
        directory.close()

    def token(sub: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(settings.jwt_secret, sub, role, 3600)}"}  # type: ignore[arg-type]

    batch = [
        {
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
            "phone": f"13{rng.randint(0, 9)}{rng.randint(10_000_000, 99_999_999)}",
            "source": rng.choice(SOURCES),
            "company": rng.choice(COMPANIES) + rng.choice(["有限公司", "集团", "股份有限公司"]),
            "industry": rng.choice(INDUSTRIES),
            "region": rng.choice(REGIONS),
            "title": rng.choice(TITLES),
            "company_size": rng.choice(["50人以下", "50-200人", "200-1000人", "1000人以上"]),
        }
        for _ in range(leads)
    ]
    with httpx.Client(timeout=60) as http:
        answers = http.post(f"{settings.intake_url}/leads/batch", json=batch, headers=token("demo-import", "integration"))
        answers.raise_for_status()
        lead_ids = [a["lead_id"] for a in answers.json() if a.get("lead_id")]
        reps = [u for _, (_, _, members) in TEAMS.items() for u, _ in members]
        worked = 0
        for n, lead_id in enumerate(lead_ids):
            if n % 3 == 2:
                continue  # a third stays in the pool
            rep = reps[n % len(reps)]
            headers = token(rep, "rep")
            claim_url = f"{settings.assignment_url}/leads/{lead_id}/claim"
            claimed = retried(lambda claim_url=claim_url, headers=headers: http.post(claim_url, headers=headers))
            if claimed.status_code != 200:
                continue
            stages = rng.choice(
                [
                    ["contacted"],
                    ["contacted", "qualified"],
                    ["qualified", "quoted"],
                    ["quoted", "negotiating", "won"],
                    ["contacted", "lost"],
                ]
            )
            for stage in stages:
                body: dict[str, object] = {
                    "channel": rng.choice(["phone", "wechat", "visit"]),
                    "summary": f"{stage}：与客户沟通需求和预算",
                    "stage": stage,
                }
                if stage == "won":
                    body |= {"won_amount": rng.randint(2, 50) * 10_000, "currency": "CNY"}
                if stage == "lost":
                    body["lost_reason"] = "预算不足"
                if stage == stages[-1] and stage not in ("won", "lost"):
                    body["next_follow_up_at"] = (datetime.now(UTC) + timedelta(days=rng.randint(1, 5))).isoformat()
                url = f"{settings.followup_url}/leads/{lead_id}/follow-ups"
                retried(lambda url=url, body=body, headers=headers: http.post(url, json=body, headers=headers))
            worked += 1
    print(f"demo: {len(lead_ids)} leads captured, {worked} claimed and worked, the rest in the pool")
    print(f"sign in at http://localhost:{settings.console_port} with password {PASSWORD!r} as:")
    print("  admin (admin); mgr-east, mgr-west (managers); wang.fang, li.lei, chen.jing, liu.yang, zhang.wei, sun.li (reps)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=300)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    run(ConsoleSettings(), args.leads, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
