"""Projections as pure functions over event sequences: what a batch changes, and that batching does not matter."""

import random
from datetime import UTC, date, datetime, timedelta

from services.analytics.projections import Fact, funnel, leaderboard, response_time
from services.analytics.projections.intervals import periods
from services.analytics.reports import funnel_group
from services.analytics.reports import leaderboard as rank
from services.analytics.synthetic import History, random_history
from shared.consumer import Delivered

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def facts(*histories: History) -> list[Fact]:
    events = [e for h in histories for e in h.events]
    return [Fact.of(Delivered(0, offset, e, e.payload())) for offset, e in enumerate(events)]


def test_funnel_keeps_the_furthest_stage_the_owner_and_the_outcome():
    h = History().capture(at(0), source="referral", region="华北", industry="金融").claim(at(1), "rep-1")
    h.follow_up(at(2), "rep-1", "qualified").release(at(3), "rep-1").claim(at(4), "rep-2").won(at(5), None)
    (row,) = funnel.changes(facts(h))
    assert (row.source, row.region, row.industry) == ("referral", "华北", "金融")
    assert row.max_stage == 6 and row.won_at == at(5) and row.lost_at is None
    assert row.rep_id == "rep-2" and row.captured_at == at(0)


def test_funnel_a_lost_lead_keeps_how_far_it_got():
    h = History().capture(at(0)).claim(at(1), "rep-1").follow_up(at(2), "rep-1", "quoted").lost(at(3), "rep-1")
    (row,) = funnel.changes(facts(h))
    assert row.max_stage == 4 and row.lost_at == at(3) and row.won_at is None


def split_and_merge(changes, merge, all_facts, cut):
    """Apply the facts as two batches, merging like the table's upsert does."""
    rows = {r.lead_id: r for r in changes(all_facts[:cut])}
    for r in changes(all_facts[cut:]):
        rows[r.lead_id] = merge(rows[r.lead_id], r) if r.lead_id in rows else r
    return rows


def test_batch_boundaries_do_not_change_funnel_or_response_rows():
    rng = random.Random(3)
    history = facts(*(random_history(rng, T0) for _ in range(30)))
    for module in (funnel, response_time):
        whole = {r.lead_id: r for r in module.changes(history)}
        for cut in (1, 57, len(history) // 2, len(history) - 1):
            assert split_and_merge(module.changes, module.merge, history, cut) == whole, module.__name__


def test_response_time_is_the_first_follow_up_and_its_rep():
    h = History().capture(at(0), source="search_ads").claim(at(1), "rep-1").follow_up(at(3), "rep-1", "contacted")
    h.release(at(4), "rep-1").claim(at(5), "rep-2").follow_up(at(6), "rep-2", "qualified")
    quiet = History().capture(at(0), source="import")
    rows = {r.lead_id: r for r in response_time.changes(facts(h, quiet))}
    assert (rows[h.lead_id].responded_at, rows[h.lead_id].rep_id) == (at(3), "rep-1")
    assert rows[quiet.lead_id].responded_at is None and rows[quiet.lead_id].source == "import"


def test_leaderboard_counts_per_rep_and_day_and_credits_unnamed_wins_to_the_owner():
    a = History().capture(at(0)).claim(at(1), "rep-1").follow_up(at(2), "rep-1", "contacted").won(at(30), None)
    a.task(at(2), "rep-1", due=at(10), done_at=at(5)).task(at(2), "rep-1", due=at(10), done_at=at(12))
    b = History().capture(at(0)).claim(at(1), "rep-2").follow_up(at(2), "rep-2", "contacted").lost(at(3), "rep-2")
    out = leaderboard.changes(facts(a, b))
    day1, day2 = T0.date(), T0.date() + timedelta(days=1)
    assert out.counters[("rep-1", day1)] == {"follow_ups": 1, "tasks_done": 2, "tasks_on_time": 1}
    assert out.counters[("rep-1", day2)] == {"won": 1}
    assert out.counters[("rep-2", day1)] == {"follow_ups": 1, "lost": 1}
    assert out.unattributed == []


def test_leaderboard_leaves_a_win_without_a_known_owner_to_the_table():
    h = History().won(at(1), None)
    out = leaderboard.changes(facts(h))
    assert out.unattributed == [(h.lead_id, T0.date(), "won")] and not out.counters


def ownership(f: Fact):
    return {"rep": f.payload.rep_id} if f.type == "LeadClaimed" else None


def release(f: Fact):
    return {"reason": f.payload.reason} if f.type == "LeadReleased" else None


def test_periods_close_in_batch_and_earlier_periods_once():
    h = History()
    h.release(at(0), "rep-0", "no_follow_up")  # closes a period from an earlier batch
    h.release(at(0.5), "rep-0", "manual")  # nothing open any more: ignored
    h.claim(at(1), "rep-1").release(at(2), "rep-1").claim(at(3), "rep-2").claim(at(4), "rep-3")
    new, closures = periods(facts(h), ownership, release, lambda f: {"reason": "reassigned"})
    assert [(c.closed_at, c.closed) for c in closures] == [(at(0), {"reason": "no_follow_up"})]
    assert [(p.opened["rep"], p.opened_at, p.closed_at, p.closed.get("reason")) for p in new] == [
        ("rep-1", at(1), at(2), "manual"),
        ("rep-2", at(3), at(4), "reassigned"),
        ("rep-3", at(4), None, None),
    ]


def test_periods_a_first_claim_closes_whatever_an_earlier_batch_left_open():
    h = History().claim(at(1), "rep-1")
    new, closures = periods(facts(h), ownership, release, lambda f: {"reason": "reassigned"})
    assert [c.closed for c in closures] == [{"reason": "reassigned"}] and len(new) == 1


def test_funnel_report_conversions_win_rate_and_cycle_time():
    group = funnel_group("web_form", [10, 8, 6, 3, 3, 2, 1], won=1, lost=4, avg_cycle_seconds=86400.0)
    assert [s.conversion_from_previous for s in group.stages] == [None, 0.8, 0.75, 0.5, 1.0, 0.6667, 0.5]
    assert (group.leads, group.win_rate, group.conversion) == (10, 0.2, 0.1)
    empty = funnel_group("none", [0] * 7, won=0, lost=0, avg_cycle_seconds=None)
    assert empty.win_rate is None and empty.stages[1].conversion_from_previous is None


def test_leaderboard_ranks_by_wins_then_conversion_then_follow_ups():
    base = {"lost": 0, "tasks_done": 2, "tasks_on_time": 1, "tasks_overdue": 0}
    rows = [
        {**base, "rep_id": "a", "leads_owned": 10, "follow_ups": 5, "won": 2},
        {**base, "rep_id": "b", "leads_owned": 4, "follow_ups": 1, "won": 2},
        {**base, "rep_id": "c", "leads_owned": 0, "follow_ups": 9, "won": 0},
    ]
    board = rank(date(2026, 11, 1), date(2026, 11, 30), rows)
    assert [(r.rank, r.rep_id, r.conversion) for r in board.reps] == [(1, "b", 0.5), (2, "a", 0.2), (3, "c", None)]
    assert board.reps[0].on_time_rate == 0.5


def test_a_won_or_lost_lead_leaves_the_reps_pipeline_but_a_released_one_is_counted_as_released():
    won = History().capture(at(0)).claim(at(1), "rep-1").won(at(2), "rep-1")
    lost = History().capture(at(0)).claim(at(1), "rep-1").lost(at(3), None)
    dropped = History().capture(at(0)).claim(at(1), "rep-2").release(at(4), "rep-2", "no_follow_up")
    out = leaderboard.changes(facts(won, lost, dropped))
    assert [(p.opened["rep_id"], p.closed_at, p.closed["reason"]) for p in out.ownerships] == [
        ("rep-1", at(2), "won"),
        ("rep-1", at(3), "lost"),
        ("rep-2", at(4), "no_follow_up"),
    ]
    assert out.counters[("rep-1", T0.date())] == {"won": 1, "lost": 1}
