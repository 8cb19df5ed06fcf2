"""What notify knows of leads and people, as of the event being applied: its tables plus this batch's changes.

The consumer applies a whole poll in one transaction; changes are kept here and written once at the end of the
batch (a statement per table instead of one per event), and every look-up sees the batch's earlier events.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from psycopg import Cursor

from services.notify.domain.notices import Lead, Person
from services.notify.store.tables import Tables
from shared.events import (
    AnyPayload,
    LeadCaptured,
    LeadScored,
    PersonalDataErased,
    RepDeactivated,
    RepJoined,
    RepReactivated,
    TeamChanged,
)

_MISSING = object()


class BatchFacts:
    """:class:`services.notify.domain.notices.Facts` over the consumer's transaction."""

    def __init__(self, cur: Cursor, tables: Tables) -> None:
        self.cur = cur
        self.t = tables
        self._leads: dict[str, Lead | None] = {}
        self._people: dict[str, Person | None] = {}
        self._dirty_leads: set[str] = set()
        self._dirty_people: set[str] = set()
        self.erased: list[str] = []

    # --- look-ups (domain.notices.Facts) ---

    def lead(self, lead_id: str) -> Lead | None:
        known = self._leads.get(lead_id, _MISSING)
        if known is _MISSING:
            self.cur.execute(self.t.q("SELECT name, grade, score, company FROM {s}.leads WHERE lead_id = %s"), (lead_id,))
            row = self.cur.fetchone()
            known = self._leads[lead_id] = Lead(*row) if row else None
        return known  # type: ignore[return-value]

    def person(self, rep_id: str) -> Person | None:
        known = self._people.get(rep_id, _MISSING)
        if known is _MISSING:
            self.cur.execute(
                self.t.q(
                    "SELECT rep_id, display_name, role, team, manager, email, phone, active FROM {s}.people WHERE rep_id = %s"
                ),
                (rep_id,),
            )
            row = self.cur.fetchone()
            known = self._people[rep_id] = Person(*row) if row else None
        return known  # type: ignore[return-value]

    def team(self, team: str) -> list[Person]:
        self.cur.execute(self.t.q("SELECT rep_id FROM {s}.people WHERE team = %s"), (team,))
        members = {row[0] for row in self.cur.fetchall()} | {rep for rep, p in self._people.items() if p and p.team == team}
        found = [self.person(rep) for rep in sorted(members)]
        return [p for p in found if p is not None and p.team == team]

    # --- changes ---

    def apply(self, payload: AnyPayload, time: datetime) -> None:
        """Learn what the event says about a lead or a person."""
        match payload:
            case LeadCaptured():
                self._set_lead(payload.lead_id, Lead(payload.name, payload.grade, payload.score, payload.company))
            case LeadScored():
                lead = self.lead(payload.lead_id) or Lead(name="")
                self._set_lead(payload.lead_id, Lead(lead.name, payload.grade, payload.score, lead.company))
            case PersonalDataErased():
                self._set_lead(payload.lead_id, None)
                self.erased.append(payload.lead_id)
            case RepJoined():
                person = Person(
                    payload.rep_id,
                    payload.display_name,
                    payload.role,
                    payload.team,
                    payload.manager,
                    payload.email,
                    payload.phone,
                    True,
                )
                self._set_person(person)
            case RepDeactivated() | RepReactivated():
                person = self.person(payload.rep_id)
                if person is not None:
                    self._set_person(replace(person, active=isinstance(payload, RepReactivated)))
            case TeamChanged():
                person = self.person(payload.rep_id)
                if person is not None:
                    self._set_person(replace(person, team=payload.team, manager=payload.manager))

    def _set_lead(self, lead_id: str, lead: Lead | None) -> None:
        self._leads[lead_id] = lead
        self._dirty_leads.add(lead_id)

    def _set_person(self, person: Person) -> None:
        self._people[person.rep_id] = person
        self._dirty_people.add(person.rep_id)

    def flush(self, now: datetime) -> None:
        """Write the batch's changes (one statement per table)."""
        leads = [(i, self._leads[i]) for i in sorted(self._dirty_leads)]
        upserts = [(i, lead.name, lead.grade, lead.score, lead.company) for i, lead in leads if lead is not None]
        gone = [i for i, lead in leads if lead is None]
        if upserts:
            self.cur.executemany(
                self.t.q(
                    "INSERT INTO {s}.leads (lead_id, name, grade, score, company) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (lead_id) DO UPDATE SET name = EXCLUDED.name, grade = EXCLUDED.grade,"
                    " score = EXCLUDED.score, company = EXCLUDED.company"
                ),
                upserts,
            )
        if gone:
            self.cur.execute(self.t.q("DELETE FROM {s}.leads WHERE lead_id = ANY(%s)"), (gone,))
        people = [p for rep in sorted(self._dirty_people) if (p := self._people[rep]) is not None]
        if people:
            self.cur.executemany(
                self.t.q(
                    "INSERT INTO {s}.people (rep_id, display_name, role, team, manager, email, phone, active, updated_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (rep_id) DO UPDATE SET"
                    " display_name = EXCLUDED.display_name, role = EXCLUDED.role, team = EXCLUDED.team,"
                    " manager = EXCLUDED.manager, email = EXCLUDED.email, phone = EXCLUDED.phone, active = EXCLUDED.active,"
                    " updated_at = EXCLUDED.updated_at"
                ),
                [(p.rep_id, p.display_name, p.role, p.team, p.manager, p.email, p.phone, p.active, now) for p in people],
            )
        self._dirty_leads.clear()
        self._dirty_people.clear()
