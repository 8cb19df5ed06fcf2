"""The pipeline of the contract: only forward, lost from any open stage, won and lost final."""

import pytest

from services.followup.domain.pipeline import FORWARD, StageMoveForbidden, stage_after_contact

OPEN_AFTER_CONTACT = ["contacted", "qualified", "quoted", "negotiating"]


@pytest.mark.parametrize("current", ["new", "assigned"])
def test_a_first_contact_moves_the_lead_to_contacted(current):
    assert stage_after_contact(current, None) == "contacted"


@pytest.mark.parametrize("current", OPEN_AFTER_CONTACT)
def test_a_contact_without_a_stage_leaves_it_where_it_is(current):
    assert stage_after_contact(current, None) == current


@pytest.mark.parametrize(
    ("current", "target"),
    [(a, b) for i, a in enumerate(FORWARD[1:-1], 1) for b in FORWARD[i + 1 :] if b not in ("new", "assigned")],
)
def test_forward_moves_are_allowed_including_skips(current, target):
    assert stage_after_contact(current, target) == target


@pytest.mark.parametrize("current", ["assigned", *OPEN_AFTER_CONTACT])
def test_lost_is_reachable_from_every_open_stage(current):
    assert stage_after_contact(current, "lost") == "lost"


@pytest.mark.parametrize(("current", "target"), [("qualified", "contacted"), ("negotiating", "quoted"), ("quoted", "qualified")])
def test_backward_moves_are_forbidden(current, target):
    with pytest.raises(StageMoveForbidden, match="only move forward"):
        stage_after_contact(current, target)


@pytest.mark.parametrize("target", ["new", "assigned"])
def test_a_contact_never_leaves_a_lead_new_or_assigned(target):
    with pytest.raises(StageMoveForbidden, match="at least to 'contacted'"):
        stage_after_contact("assigned", target)


@pytest.mark.parametrize("final", ["won", "lost"])
@pytest.mark.parametrize("target", ["contacted", "negotiating", "won", "lost", "new"])
def test_won_and_lost_are_final(final, target):
    if target == final:
        assert stage_after_contact(final, target) == final
        return
    with pytest.raises(StageMoveForbidden, match="final"):
        stage_after_contact(final, target)


@pytest.mark.parametrize("final", ["won", "lost"])
def test_a_note_on_a_closed_deal_keeps_its_stage(final):
    assert stage_after_contact(final, None) == final
