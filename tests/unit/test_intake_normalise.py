"""Normalising what people type: phones to E.164, tidy text, emails, WeChat ids, channels; whole submissions."""

import random

import phonenumbers
import pytest

from services.intake.capture import ClaimNotAllowed, InvalidLead, parse_lead
from services.intake.normalise import (
    InvalidValue,
    normalise_email,
    normalise_phone,
    normalise_source,
    normalise_tags,
    normalise_text,
    normalise_wechat,
)


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("138 0013 8000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("0086 13800138000", "+8613800138000"),
        ("(010) 6552 9988", "+861065529988"),
        ("１３８００１３８０００", "+8613800138000"),  # full-width digits from a Chinese IME
        (" 13800138000\u3000", "+8613800138000"),
        ("+1 650-253-0000", "+16502530000"),
    ],
)
def test_phone_numbers_written_any_common_way_resolve_to_e164(typed, e164):
    assert normalise_phone(typed, "CN") == e164


@pytest.mark.parametrize("typed", ["12345", "abc", "", "138001380001234", "+86 000 0000 0000"])
def test_impossible_phone_numbers_are_refused(typed):
    with pytest.raises(InvalidValue):
        normalise_phone(typed, "CN")


def _full_parse(typed: str, region: str) -> str | None:
    """What phonenumbers alone makes of a number (None: refused); the fast path must agree with it."""
    try:
        number = phonenumbers.parse(typed, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalised_or_none(typed: str, region: str) -> str | None:
    try:
        return normalise_phone(typed, region)
    except InvalidValue:
        return None


def test_mobile_shaped_numbers_are_decided_exactly_as_phonenumbers_decides_them():
    pick = random.Random(86)
    for prefix in range(100, 200):
        for _ in range(6):
            national = f"{prefix}{pick.randrange(10**8):08d}"
            for typed in (national, f"+86{national}", f"+86 {national[:3]}-{national[3:7]}-{national[7:]}"):
                for region in ("CN", "US"):
                    assert _normalised_or_none(typed, region) == _full_parse(typed, region), (typed, region)


def test_the_default_region_decides_numbers_without_a_country_code():
    assert normalise_phone("(650) 253-0000", "US") == "+16502530000"


def test_text_is_trimmed_collapsed_and_full_width_folded():
    assert normalise_text("  李\u3000 四  ") == "李 四"
    assert normalise_text("ＡＢＣ公司") == "ABC公司"
    assert normalise_text("   ") is None
    assert normalise_text(None) is None


def test_emails_are_lower_cased_and_checked():
    assert normalise_email(" Wang.Wu@Example.COM ") == "wang.wu@example.com"
    assert normalise_email("") is None
    for bad in ("wang", "wang@", "wang@example", "a@b@c.com"):
        with pytest.raises(InvalidValue):
            normalise_email(bad)


def test_wechat_ids_are_lower_cased_and_may_be_the_phone():
    assert normalise_wechat(" WangWu_88 ", "+8613800138000") == "wangwu_88"
    assert normalise_wechat("同手机", "+8613800138000") == "+8613800138000"
    assert normalise_wechat("139 0013 9000", "+8613800138000") == "+8613900139000"
    with pytest.raises(InvalidValue):
        normalise_wechat("8!", "+8613800138000")


def test_channels_are_folded_to_the_contract_vocabulary_and_free_text_is_kept():
    assert normalise_source("Trade Show") == "trade_show"
    assert normalise_source("展会") == "trade_show"
    assert normalise_source("  web-form ") == "web_form"
    assert normalise_source("抖音") == "抖音"
    assert normalise_source(" ") is None


def test_tags_are_trimmed_and_kept_once():
    assert normalise_tags([" VIP", "vip", "", "展会 2026"]) == ["VIP", "展会 2026"]


def lead(**fields):
    return {"name": "李四", "phone": "13800138000", "source": "web_form", **fields}


def test_a_submission_becomes_a_normalised_new_lead():
    new = parse_lead(
        lead(
            name=" 李  四 ",
            phone="+86 138-0013-8000",
            email="LI@Example.com",
            wechat="同号",
            company=" 示例科技 ",
            contacts=[{"name": " 赵总 ", "role": "decision_maker", "phone": "139 0013 9000"}],
            tags=["a", "A"],
        ),
        default_region="CN",
        captured_by="crm",
        role="integration",
    )
    assert (new.name, new.phone, new.source) == ("李 四", "+8613800138000", "web_form")
    assert new.profile["email"] == "li@example.com" and new.profile["wechat"] == "+8613800138000"
    assert new.profile["company"] == "示例科技" and new.profile["tags"] == ["a"]
    assert new.profile["contacts"] == [{"name": "赵总", "role": "decision_maker", "phone": "+8613900139000", "email": None}]
    assert new.reported_by is None and new.lead_id == parse_lead(lead(), default_region="CN", captured_by="x", role="rep").lead_id


def test_every_bad_field_is_reported_at_once_by_name():
    with pytest.raises(InvalidLead) as caught:
        parse_lead(
            lead(name="  ", phone="12345", source="", email="nope", contacts=[{"name": "x", "role": "user", "phone": "1"}]),
            default_region="CN",
            captured_by="crm",
            role="integration",
        )
    assert {e["field"] for e in caught.value.errors} == {"name", "phone", "source", "email", "contacts.0.phone"}


def test_schema_errors_name_the_field():
    with pytest.raises(InvalidLead) as caught:
        parse_lead({"name": "x", "contacts": [{"name": "y", "role": "ceo"}]}, default_region="CN", captured_by="c", role="rep")
    assert {e["field"] for e in caught.value.errors} == {"phone", "source", "contacts.0.role"}


def test_a_rep_claiming_reports_the_lead_for_themself_and_others_may_not_claim():
    assert parse_lead(lead(claim=True), default_region="CN", captured_by="rep-7", role="rep").reported_by == "rep-7"
    with pytest.raises(ClaimNotAllowed):
        parse_lead(lead(claim=True), default_region="CN", captured_by="m-1", role="manager")
