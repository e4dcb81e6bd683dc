"""The service's clock-driven scheduler, driven by tick(now) on a ManualClock: no sleeping."""

from __future__ import annotations

import logging

import pytest

from metricskit._scheduler import Scheduler
from metricskit.testing import ManualClock


def test_tasks_run_on_their_periods_by_the_clock() -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    runs: list[tuple[str, float]] = []
    sched.every("fast", 10, lambda: runs.append(("fast", clock.now())))
    sched.every("slow", 30, lambda: runs.append(("slow", clock.now())))
    sched.every("later", 20, lambda: runs.append(("later", clock.now())), first_after_s=20)
    start = clock.now()
    for _ in range(7):  # t = 0, 10, ..., 60
        sched.tick()
        clock.advance("10s")
    got = {name: [t - start for n, t in runs if n == name] for name in ("fast", "slow", "later")}
    assert got == {
        "fast": [0, 10, 20, 30, 40, 50, 60],
        "slow": [0, 30, 60],
        "later": [20, 40, 60],
    }


def test_tick_at_an_explicit_time_and_next_due() -> None:
    clock = ManualClock(1_000)
    sched = Scheduler(clock)
    sched.every("a", 5, lambda: None)
    assert sched.next_due_ns() == clock.now_ns()  # never run: due now
    assert sched.tick() == ["a"]
    assert sched.tick() == []  # each due run happens once
    assert sched.next_due_ns() == 1_005 * 10**9
    assert sched.tick(1_005 * 10**9) == ["a"]


def test_a_task_may_set_its_own_next_due_time() -> None:
    clock = ManualClock(0)
    sched = Scheduler(clock)
    sched.every("own", 60, timed=lambda now: now + 7 * 10**9)
    assert sched.tick() == ["own"]
    assert sched.tasks["own"].next_due_ns == 7 * 10**9


def test_a_clock_set_backwards_does_not_stall_a_task() -> None:
    clock = ManualClock(10_000)
    sched = Scheduler(clock)
    sched.every("hourly", 3600, lambda: None)
    assert sched.tick() == ["hourly"]
    clock.advance("59m")
    assert sched.tick() == []
    clock.set(5_000)  # before the last run: a new period starts at once
    assert sched.tick() == ["hourly"]
    clock.advance("1h")
    assert sched.tick() == ["hourly"]


def test_a_failing_task_is_logged_and_the_others_run(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    done: list[str] = []
    sched.every("broken", 1, lambda: 1 / 0)
    sched.every("fine", 1, lambda: done.append("fine"))
    with caplog.at_level(logging.ERROR, logger="metricskit.scheduler"):
        assert sched.tick() == ["broken", "fine"]
    assert done == ["fine"]
    assert "scheduled task broken failed" in caplog.text
    clock.advance("1s")
    assert sched.tick() == ["broken", "fine"]  # still scheduled


def test_bad_arguments() -> None:
    sched = Scheduler(ManualClock())
    with pytest.raises(ValueError, match="> 0"):
        sched.every("x", 0, lambda: None)
    with pytest.raises(ValueError, match="exactly one"):
        sched.every("x", 1)
    sched.every("x", 1, lambda: None)
    with pytest.raises(ValueError, match="already scheduled"):
        sched.every("x", 1, lambda: None)


def test_background_thread_and_tick_share_one_schedule() -> None:
    clock = ManualClock()
    sched = Scheduler(clock)
    sched.every("a", 60, lambda: None)
    sched.start()
    try:
        with pytest.raises(RuntimeError):
            sched.start()
        sched.tick()  # waits for the thread's first tick if it is in progress
        assert sched.tasks["a"].last_run_ns == clock.now_ns()
    finally:
        sched.stop()
    assert not sched.running
