"""The follow loop every relay and projector runs: a nudge is never lost, not even one given mid-step."""

from __future__ import annotations

import asyncio
import time

from shared.follow import FollowLoop


async def test_a_nudge_given_while_a_step_runs_makes_the_loop_go_round_at_once():
    loop = FollowLoop(poll_interval=5.0)
    calls: list[float] = []

    async def step() -> int:
        calls.append(time.monotonic())
        if len(calls) == 1:
            loop.nudge()  # something was recorded after this step read: nothing to do now, but look again
            await asyncio.sleep(0.05)  # the step goes on awaiting (its publish, its write) after the nudge
        else:
            loop.stop()
        return 0

    started = time.monotonic()
    await asyncio.wait_for(loop.run(step), 10)
    assert len(calls) == 2
    assert calls[1] - started < 1.0, "the nudge given during the step was dropped; the loop waited for its poll"


async def test_without_nudges_the_loop_waits_for_its_poll_interval():
    loop = FollowLoop(poll_interval=0.3)
    calls: list[float] = []

    async def step() -> int:
        calls.append(time.monotonic())
        if len(calls) == 2:
            loop.stop()
        return 0

    await asyncio.wait_for(loop.run(step), 10)
    assert calls[1] - calls[0] >= 0.25
