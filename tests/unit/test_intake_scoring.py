"""Scoring rules, grades and the Lead aggregate's rules: pure, in memory, time passed in."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.intake.config import DEFAULT_SCORING_RULES, load_scoring_rules
from services.intake.domain import Lead, NewLead, UnknownSignal
from services.intake.publishers import to_integration_events
from services.intake.scoring import ScoringRules, company_size_of
from shared.clock import FakeClock
from shared.events import LeadCaptured, LeadRecaptured, LeadScored

RULES = ScoringRules.model_validate(
    {
        "grades": {"A": 70, "B": 40},
        "profile": {
            "industry": [{"keywords": ["制造", "Manufacturing"], "points": 15}],
            "title": [
                {"keywords": ["总监", "director"], "points": 20},
                {"keywords": ["采购"], "points": 15},
                {"keywords": ["实习"], "points": -10},
            ],
            "region": [{"keywords": ["上海"], "points": 10}],
            "company_size": [{"at_least": 50, "points": 6}, {"at_least": 1000, "points": 20}],
            "contacts": {"decision_maker": 10},
        },
        "signals": {"requested_demo": {"points": 25}, "viewed_pricing": {"points": 8, "max_times": 2}},
    }
)


def test_each_matching_dimension_adds_its_points_and_says_why():
    card = RULES.evaluate(
        {
            "industry": "汽车制造",
            "title": "采购总监",
            "region": "上海市",
            "company_size": "1,200人",
            "contacts": [{"name": "赵", "role": "decision_maker"}],
        },
        {},
    )
    assert card.reasons == [
        {"rule": "industry", "matched": "制造", "points": 15},
        {"rule": "title", "matched": "总监", "points": 20},  # the first matching title rule counts, once
        {"rule": "region", "matched": "上海", "points": 10},
        {"rule": "company_size", "matched": ">=1000", "points": 20},  # the largest threshold reached
        {"rule": "contacts", "matched": "decision_maker", "points": 10},
    ]
    assert (card.score, card.grade) == (75, "A")


def test_keywords_match_case_insensitively_and_nothing_matching_scores_zero():
    assert RULES.evaluate({"title": "Sales DIRECTOR"}, {}).score == 20
    card = RULES.evaluate({"industry": "餐饮", "title": None}, {})
    assert (card.score, card.grade, card.reasons) == (0, "C", [])


def test_grades_follow_the_thresholds():
    assert [RULES.grade_for(s) for s in (0, 39, 40, 69, 70, 100)] == ["C", "C", "B", "B", "A", "A"]
    strict = RULES.model_copy(update={"grades": RULES.grades.model_copy(update={"A": 90})})
    assert strict.grade_for(75) == "B"


def test_signals_count_up_to_their_limit_and_scores_stay_within_0_to_100():
    card = RULES.evaluate({}, {"viewed_pricing": 5, "requested_demo": 1, "not_a_rule": 3})
    assert card.reasons == [
        {"rule": "signal", "matched": "viewed_pricing", "times": 2, "points": 16},
        {"rule": "signal", "matched": "requested_demo", "times": 1, "points": 25},
    ]
    assert RULES.evaluate({"title": "实习生"}, {}).score == 0
    assert RULES.evaluate({"industry": "制造", "title": "总监"}, {"requested_demo": 1, "viewed_pricing": 9}).score == 76
    hot = RULES.model_copy(update={"signals": {"x": RULES.signals["requested_demo"].model_copy(update={"points": 200})}})
    assert hot.evaluate({}, {"x": 1}).score == 100


@pytest.mark.parametrize(
    ("text", "size"),
    [("200-500人", 200), ("1,000+", 1000), ("50人以下", 49), ("under 10", 9), ("大型企业", None), (None, None)],
)
def test_company_size_is_read_from_what_people_write(text, size):
    assert company_size_of(text) == size


def test_rule_files_with_mistakes_are_refused():
    with pytest.raises(ValidationError):
        ScoringRules.model_validate({"grades": {"A": 30, "B": 40}})
    with pytest.raises(ValidationError):
        ScoringRules.model_validate({"profile": {"industri": []}})  # a typo is not silently ignored


def test_the_shipped_rules_load_and_grade_a_strong_lead_a():
    rules = load_scoring_rules(DEFAULT_SCORING_RULES)
    assert {"viewed_pricing", "downloaded_whitepaper", "attended_webinar", "requested_demo"} <= set(rules.signals)
    card = rules.evaluate({"industry": "制造业", "title": "采购总监", "region": "深圳", "company_size": "2000人"}, {})
    assert card.grade == "B"
    assert rules.evaluate({"industry": "制造业", "title": "CEO", "region": "深圳", "company_size": "2000人"}, {}).grade == "A"


CLOCK = FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))


def new_lead(**changes) -> NewLead:
    fields = {
        "phone": "+8613800138000",
        "name": "李四",
        "source": "web_form",
        "captured_by": "crm",
        "profile": {"industry": "制造", "title": "采购", "contacts": []},
    }
    return NewLead(**{**fields, **changes})


def test_a_captured_lead_carries_its_score_reasons_and_the_time_passed_in():
    lead = Lead.capture(new_lead(), RULES, possible_duplicates=[], now=CLOCK())
    assert (lead.score, lead.grade, lead.captured_at) == (30, "C", CLOCK())
    assert lead.id == new_lead().lead_id == new_lead(name="other").lead_id  # identity is the phone


def test_a_signal_rescores_the_lead_and_unknown_signals_are_refused():
    lead = Lead.capture(new_lead(), RULES, possible_duplicates=[], now=CLOCK())
    card = lead.record_signal("requested_demo", RULES, recorded_by="web", now=CLOCK.advance(timedelta(hours=1)))
    assert (card.score, card.grade, lead.score, lead.grade, lead.signals) == (55, "B", 55, "B", {"requested_demo": 1})
    with pytest.raises(UnknownSignal):
        lead.record_signal("liked_post", RULES, recorded_by="web", now=CLOCK())
    assert lead.version == 2


def test_recaptures_are_recorded_but_a_replayed_import_row_is_not():
    lead = Lead.capture(new_lead(import_fingerprint="row-1"), RULES, possible_duplicates=[], now=CLOCK())
    assert lead.recapture(new_lead(source="trade_show", captured_by="rep-2"), now=CLOCK()) is True
    assert lead.recapture(new_lead(import_fingerprint="row-1"), now=CLOCK()) is False
    assert lead.recapture(new_lead(import_fingerprint="row-9"), now=CLOCK()) is True
    assert lead.recapture(new_lead(import_fingerprint="row-9"), now=CLOCK()) is False
    assert [r["source"] for r in lead.recaptures] == ["trade_show", "web_form"]


def test_soft_match_keys_ignore_case_spacing_and_a_wechat_that_is_the_phone():
    keys = new_lead(profile={"email": "a@b.cn", "wechat": "+8613800138000", "company": "示例 科技", "contacts": []}).match_keys()
    assert keys == ["email:a@b.cn", "company+name:示例科技|李四"]
    assert new_lead(name="李 四", profile={"company": "示例科技", "wechat": "wx_li_si"}).match_keys() == [
        "wechat:wx_li_si",
        "company+name:示例科技|李四",
    ]


def test_domain_events_map_to_valid_public_events():
    lead = Lead.capture(new_lead(), RULES, possible_duplicates=["x"], now=CLOCK())
    lead.recapture(new_lead(source="trade_show"), now=CLOCK())
    lead.record_signal("viewed_pricing", RULES, recorded_by="web", now=CLOCK())
    envelopes = [e for event in lead.collect_events() for e in to_integration_events(event, None)]
    assert [e.type for e in envelopes] == ["LeadCaptured", "LeadRecaptured", "LeadScored"]
    captured, recaptured, scored = (e.payload() for e in envelopes)
    assert isinstance(captured, LeadCaptured) and captured.phone == "+8613800138000" and captured.score == 30
    assert captured.score_reasons == [
        {"rule": "industry", "matched": "制造", "points": 15},
        {"rule": "title", "matched": "采购", "points": 15},
    ]
    assert captured.possible_duplicates == ["x"]
    assert isinstance(recaptured, LeadRecaptured) and recaptured.source == "trade_show"
    assert isinstance(scored, LeadScored) and (scored.previous_score, scored.score, scored.signal) == (30, 38, "viewed_pricing")
    assert len({e.id for e in envelopes}) == 3 and all(e.subject == str(lead.id) for e in envelopes)
