"""Realistic, valid input: lead submissions for intake and contract envelopes for the topic.

A captured lead's envelope is about 1 KB, like a web-form lead with a needs text and a decision
chain. Phones are unique within a run (a counter), so every capture is a new lead.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import (
    Envelope,
    FollowUpLogged,
    FollowUpTaskCompleted,
    FollowUpTaskScheduled,
    LeadCaptured,
    LeadClaimed,
    LeadLost,
    LeadStageChanged,
    LeadWon,
    Payload,
    make_envelope,
)

SOURCES = ("web_form", "trade_show", "referral", "search_ads", "import", "api")
REGIONS = ("华东", "华北", "华南", "西南", "East", "North")
INDUSTRIES = ("manufacturing", "retail", "education", "healthcare", "software", "logistics")
SIZES = ("1-50", "51-200", "201-1000", "1000+")
NEEDS = (
    "Looking for a CRM to replace spreadsheets for a 40-person sales team; needs WeChat integration, "
    "lead assignment by region and a weekly funnel report for management. Budget approved for Q1, "
    "decision expected within six weeks after a trial with two teams. "
)
_MOBILE_PREFIXES = ("138", "139", "150", "186")


class LeadFactory:
    """Lead submissions (``POST /leads`` bodies) with phones never used before in this run."""

    def __init__(self, seed: int = 8) -> None:
        self._counter = itertools.count()
        self._random = random.Random(seed)

    def phone(self) -> str:
        n = next(self._counter)
        return f"+86{_MOBILE_PREFIXES[n % 4]}{n // 4:08d}"

    def lead(self) -> dict[str, Any]:
        pick = self._random.choice
        phone = self.phone()
        return {
            "name": f"王{pick('伟芳娜敏静丽强磊军洋')} {phone[-4:]}",
            "phone": phone,
            "source": pick(SOURCES),
            "email": f"buyer{phone[-8:]}@example.com",
            "company": f"Example Trading Co. {phone[-5:]}",
            "title": pick(("Head of Sales", "CTO", "Purchasing Manager", "Operations Director")),
            "industry": pick(INDUSTRIES),
            "region": pick(REGIONS),
            "company_size": pick(SIZES),
            "needs": NEEDS + pick(("Urgent.", "Comparing three vendors.", "Existing customer of a competitor.")),
            "contacts": [
                {"name": "Li Na", "role": "decision_maker", "phone": phone, "email": f"li{phone[-6:]}@example.com"},
                {"name": "Zhang Wei", "role": "purchaser", "email": f"zhang{phone[-6:]}@example.com"},
            ],
            "tags": ["bench", pick(("hot", "warm", "cold"))],
        }

    def leads(self, count: int) -> list[dict[str, Any]]:
        return [self.lead() for _ in range(count)]


def captured_payload(lead: dict[str, Any], lead_id: str, *, score: int = 55, grade: str = "B") -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead_id,
        **{k: v for k, v in lead.items() if k != "tags"},
        tags=lead["tags"],
        score=score,
        grade=grade,  # type: ignore[arg-type]
        captured_by="bench",
    )


def lead_history(lead: dict[str, Any], start: datetime, rep: str, outcome: int) -> list[Payload]:
    """A plausible life of one lead: captured, claimed, followed up, a task, a stage move, won or lost."""
    lead_id = str(uuid.uuid4())
    follow_up_id, task_id = str(uuid.uuid4()), str(uuid.uuid4())
    history: list[Payload] = [
        captured_payload(lead, lead_id),
        LeadClaimed(lead_id=lead_id, rep_id=rep, how="claim", protected_until=start + timedelta(days=30)),
        FollowUpLogged(
            lead_id=lead_id,
            follow_up_id=follow_up_id,
            rep_id=rep,
            channel="phone",
            summary="Intro call; walked through the needs and agreed on a demo.",
            next_step="demo",
            next_follow_up_at=start + timedelta(days=3),
            stage="contacted",
            logged_at=start + timedelta(hours=2),
        ),
        FollowUpTaskScheduled(
            lead_id=lead_id, task_id=task_id, rep_id=rep, kind="next_follow_up", title="Demo", due_at=start + timedelta(days=3)
        ),
        FollowUpTaskCompleted(lead_id=lead_id, task_id=task_id, rep_id=rep, completed_at=start + timedelta(days=2), on_time=True),
        LeadStageChanged(lead_id=lead_id, from_stage="contacted", to_stage="qualified", rep_id=rep),
    ]
    if outcome == 0:
        history.append(LeadWon(lead_id=lead_id, rep_id=rep, amount=48000.0, currency="CNY"))
    elif outcome == 1:
        history.append(LeadLost(lead_id=lead_id, rep_id=rep, reason="budget"))
    return history


def history_envelopes(count: int, *, reps: int = 50, seed: int = 5) -> Iterator[Envelope]:
    """``count`` valid contract envelopes: whole lead histories in order (the last one may be cut short)."""
    factory = LeadFactory(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    produced = 0
    for n in itertools.count():
        moment = start + timedelta(minutes=n)
        for step, payload in enumerate(lead_history(factory.lead(), moment, f"rep-{n % reps}", n % 3)):
            if produced == count:
                return
            service = "intake" if step == 0 else "assignment" if step == 1 else "followup"
            yield make_envelope(payload, service=service, time=moment + timedelta(seconds=step))
            produced += 1
