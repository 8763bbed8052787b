"""Live progress: plain lines for logs, rich bars on a terminal, and which one ``fedray run`` picks."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from fedray.cli.progress import LiveProgress, PlainProgress, describe, progress_display
from fedray.engine.observers import Observers, Progress, RoundObserver, RunStart
from fedray.engine.startup import StartupClock
from fedray.engine.summary import RunSummary
from fedray.errors import FedRayError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def plain(clock: FakeClock, stream: io.StringIO) -> PlainProgress:
    return PlainProgress(stream, interval_s=5.0, clock=clock, heartbeat=False)


def test_plain_lines_name_each_startup_phase_as_it_begins_and_the_ready_time():
    clock, out = FakeClock(), io.StringIO()
    progress = plain(clock, out)
    for label in ("starting Ray", "loading the model on 2 client actor(s)"):
        progress.on_progress(Progress("startup", label, 0))
        clock.now += 2
        progress.on_progress(Progress("startup", label, 1))
    progress.on_start(RunStart(Path("run"), None, 0, 3))
    assert out.getvalue().splitlines() == ["start-up: starting Ray ...",
                                           "start-up: loading the model on 2 client actor(s) ...",
                                           "start-up: ready after 4.0 s"]


def test_plain_heartbeat_reports_long_steps_only_after_a_silent_interval():
    clock, out = FakeClock(), io.StringIO()
    progress = plain(clock, out)
    progress.on_progress(Progress("fit", "round 3", 0, 4))
    clock.now += 3
    progress.tick()
    assert out.getvalue() == ""  # less than 5 s without a line
    progress.on_progress(Progress("fit", "round 3", 2, 4))
    clock.now += 3
    progress.tick()
    assert out.getvalue().splitlines() == ["round 3: 2/4 fits back (6 s)"]
    progress.tick()
    assert len(out.getvalue().splitlines()) == 1  # a line was just written
    progress.on_progress(Progress("fit", "round 3", 4, 4))
    clock.now += 10
    progress.tick()
    assert len(out.getvalue().splitlines()) == 1  # the round is done: nothing left to report


def test_plain_heartbeat_skips_short_steps_and_counts_round_lines_as_output():
    clock, out = FakeClock(), io.StringIO()
    progress = plain(clock, out)
    clock.now += 20  # a long silence before the step
    progress.on_progress(Progress("fit", "round 1", 0, 4))
    clock.now += 2
    progress.tick()
    assert out.getvalue() == ""  # the step is younger than the interval
    progress.on_round(None)  # its round line was printed
    progress.on_progress(Progress("fit", "round 2", 0, 4))
    clock.now += 4
    progress.tick()
    assert out.getvalue() == ""


def test_plain_lines_carry_no_control_codes_and_the_heartbeat_thread_stops(tmp_path):
    out = io.StringIO()
    progress = PlainProgress(out, interval_s=0.01)
    progress.on_progress(Progress("eval", "test", 0, 359))
    progress.on_progress(Progress("eval", "test", 180, 359))
    progress.on_finish(RunSummary(tmp_path), completed=True)
    assert progress._thread is not None and not progress._thread.is_alive()
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_describe_names_the_work_and_its_count():
    assert describe(Progress("startup", "starting Ray", 0)) == "start-up: starting Ray"
    assert describe(Progress("fit", "round 3", 2, 4)) == "round 3: 2/4 fits back"
    assert describe(Progress("eval", "validation", 10, 40)) == "eval validation: 10/40 samples evaluated"


def test_live_bars_show_each_step_and_vanish_when_it_ends(tmp_path):
    out = TtyStream()
    live = LiveProgress(out, auto_refresh=False)
    live.console.width = 120
    live.on_progress(Progress("startup", "starting Ray", 0))
    live.on_progress(Progress("fit", "round 1", 3, 4))
    titles = [task.description for task in live.bars.tasks]
    assert titles == ["start-up: starting Ray", "round 1"]
    live.bars.refresh()
    assert "3/4 fits back" in out.getvalue() and "\x1b[" in out.getvalue()
    live.on_progress(Progress("startup", "starting Ray", 1))
    live.on_progress(Progress("fit", "round 1", 4, 4))
    assert live.bars.tasks == []
    print("round   1/3 | the round's line")  # printed above the bars while they are live
    after = out.getvalue().split("the round's line")[-1]
    assert "round   1/3" in out.getvalue() and "fits back" not in after  # no stale bar comes back
    live.on_finish(RunSummary(tmp_path), completed=True)
    assert not live.started


def test_auto_picks_live_on_a_terminal_and_plain_elsewhere():
    plain_display = progress_display("auto", io.StringIO())
    assert isinstance(plain_display, PlainProgress)
    plain_display.on_finish(None, completed=True)
    assert isinstance(progress_display("auto", TtyStream()), LiveProgress)
    assert isinstance(progress_display("live", io.StringIO()), LiveProgress)
    assert type(progress_display("off", TtyStream())) is RoundObserver
    with pytest.raises(FedRayError, match="one of auto, live, plain, off"):
        progress_display("fancy")


def test_startup_clock_announces_each_phase_and_still_times_it():
    steps: list[Progress] = []
    clock = StartupClock(on_progress=steps.append)
    with clock.phase("ray.init", "starting Ray"):
        pass
    with clock.phase("data"):
        pass
    assert [(s.stage, s.label, s.done) for s in steps] == [
        ("startup", "starting Ray", 0), ("startup", "starting Ray", 1), ("startup", "data", 0),
        ("startup", "data", 1)]
    assert set(clock.phases) == {"ray.init", "data"}  # the run log's split keeps its step names


def test_observers_forward_progress_in_order():
    seen: list[tuple[str, int]] = []

    class Recorder(RoundObserver):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_progress(self, step: Progress) -> None:
            seen.append((self.name, step.done))

    Observers([Recorder("a"), Recorder("b")]).on_progress(Progress("fit", "round 1", 1, 2))
    assert seen == [("a", 1), ("b", 1)]
    assert Progress("startup", "x", 1).finished and not Progress("fit", "r", 1, 2).finished


def test_actor_output_is_read_from_this_jobs_worker_logs_once_per_line(tmp_path):
    from fedray.engine.runtime import actor_output

    logs = tmp_path / "logs"
    logs.mkdir()
    warning = "modeling_utils.py:3312: FutureWarning: `is_gradient_checkpointing` is deprecated"
    for worker in ("aaa", "bbb"):
        (logs / f"worker-{worker}-01000000-1{len(worker)}.err").write_text(
            f":job_id:01000000\n:actor_name:ClientActor\n{warning}\n  warnings.warn(\n")
    (logs / "worker-ccc-02000000-17.err").write_text("another job's line\n")
    (logs / "worker-ddd-01000000-18.out").write_text("stdout is not copied\n")
    assert actor_output(str(tmp_path), "01000000") == [f"{warning}  [×2 workers]",
                                                       "  warnings.warn(  [×2 workers]"]
    assert actor_output(None, "01000000") == []


def test_forwarded_actor_lines_lose_their_colour_only_when_redirected(monkeypatch):
    from fedray.engine.runtime import plain_prefixes_when_redirected

    monkeypatch.delenv("RAY_COLOR_PREFIX", raising=False)
    plain_prefixes_when_redirected(TtyStream())
    assert "RAY_COLOR_PREFIX" not in os.environ
    plain_prefixes_when_redirected(io.StringIO())
    assert os.environ["RAY_COLOR_PREFIX"] == "0"
    monkeypatch.setenv("RAY_COLOR_PREFIX", "1")  # the user's choice wins
    plain_prefixes_when_redirected(io.StringIO())
    assert os.environ["RAY_COLOR_PREFIX"] == "1"
