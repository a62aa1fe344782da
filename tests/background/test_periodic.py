"""Periodic jobs: a failed pass is logged and the next one comes; stopping waits for the pass
under way; a disabled job never starts; the first pass waits ``first_after``."""

import asyncio
import logging

import pytest

from helpdesk import periodic
from helpdesk.periodic import PeriodicJob
from tests.support.waiting import wait_until


async def test_a_failed_pass_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    passes: list[int] = []

    async def flaky(_stop: asyncio.Event) -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise RuntimeError("the database went away")

    with caplog.at_level(logging.ERROR, logger="helpdesk.periodic"):
        async with periodic.running([PeriodicJob("flaky", flaky, every=0.01)]) as names:
            assert names == ["flaky"]
            await wait_until(lambda: len(passes) >= 3)
    assert "flaky: a pass failed" in caplog.text and "the database went away" in caplog.text


async def test_stopping_waits_for_the_pass_under_way() -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def long_pass(stop: asyncio.Event) -> None:
        started.set()
        await stop.wait()  # a long pass ends between two batches once told to stop
        await asyncio.sleep(0)
        finished.set()

    async with periodic.running([PeriodicJob("long", long_pass, every=60)]):
        await started.wait()
    assert finished.is_set()


async def test_disabled_jobs_do_not_start_and_the_first_pass_can_wait() -> None:
    ran: list[str] = []

    async def note(name: str) -> None:
        ran.append(name)

    jobs = [PeriodicJob("off", lambda _: note("off"), every=0.01, enabled=False),
            PeriodicJob("later", lambda _: note("later"), every=0.01, first_after=3600),
            PeriodicJob("now", lambda _: note("now"), every=3600),
            PeriodicJob("timed", lambda _: note("timed"), every=lambda: 3600, first_after=lambda: 0)]
    async with periodic.running(jobs) as names:
        assert names == ["later", "now", "timed"]
        await wait_until(lambda: {"now", "timed"} <= set(ran))
    assert sorted(ran) == ["now", "timed"]
