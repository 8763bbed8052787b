"""Live progress of a run on the terminal: start-up phases, fits back in a round, samples evaluated.

The engine reports its long work as :class:`~fedray.engine.observers.Progress` steps; these observers
show them. On a terminal, :class:`LiveProgress` draws transient `rich` progress bars (a spinner and the
elapsed time keep moving even while nothing is reported, e.g. while a model loads), which vanish when
their step ends, so only the one-line-per-round summary stays on screen. Elsewhere (CI, a redirected
log), :class:`PlainProgress` writes plain lines, no control codes: each start-up phase as it begins,
and the state of an unfinished step every ``interval_s`` seconds, so a log never goes silent for long.
:func:`progress_display` picks one from where the output goes.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, TextIO

from fedray.engine.observers import Progress, RoundObserver, RunStart
from fedray.errors import FedRayError

#: What each stage counts, as a user reads it.
UNITS = {"fit": "fits back", "eval": "samples evaluated"}
#: How often a plain log reports a step that is still running (seconds).
PLAIN_INTERVAL_S = 5.0
#: The values of ``fedray run --progress``.
PROGRESS_MODES = ("auto", "live", "plain", "off")


def describe(step: Progress) -> str:
    """A step in words: ``start-up: starting Ray``, ``round 3: 2/4 fits back``, ``eval test: 180/359 ...``."""
    if step.stage == "startup":
        return f"start-up: {step.label}"
    prefix = step.label if step.stage == "fit" else f"eval {step.label}"
    return f"{prefix}: {step.done}/{step.total} {UNITS.get(step.stage, 'done')}"


def bar_title(step: Progress) -> str:
    """A live bar's title: the phase, the round or the evaluated set."""
    return {"startup": f"start-up: {step.label}", "eval": f"eval {step.label}"}.get(step.stage, step.label)


class PlainProgress(RoundObserver):
    """Plain lines for logs: each start-up phase as it begins, then every step that has run for
    ``interval_s`` seconds, again each ``interval_s`` seconds that pass without a line (a round's own
    line counts; a background heartbeat calls :meth:`tick`)."""

    def __init__(self, stream: TextIO | None = None, interval_s: float = PLAIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, heartbeat: bool = True) -> None:
        self.stream, self.interval_s, self.clock = stream, interval_s, clock
        self.began = clock()
        self.last_line = self.began
        self.current: dict[tuple[str, str], tuple[Progress, float]] = {}  # unfinished steps, since when
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if heartbeat:
            self._thread = threading.Thread(target=self._beat, name="fedray-progress", daemon=True)
            self._thread.start()

    def on_progress(self, step: Progress) -> None:
        key = (step.stage, step.label)
        with self._lock:
            if step.finished:
                self.current.pop(key, None)
                return
            since = self.current.get(key, (step, self.clock()))[1]
            self.current[key] = (step, since)
            if step.stage == "startup" and step.done == 0:
                self._write(f"{describe(step)} ...")

    def on_start(self, start: RunStart) -> None:
        with self._lock:
            self.current = {k: v for k, v in self.current.items() if k[0] != "startup"}
            self._write(f"start-up: ready after {self.clock() - self.began:.1f} s")

    def on_round(self, record: Any) -> None:
        with self._lock:
            self.last_line = self.clock()  # the round's own line (ProgressLines) broke the silence

    def tick(self) -> None:
        """Report the unfinished steps if nothing was written for ``interval_s`` seconds."""
        with self._lock:
            now = self.clock()
            if not self.current or now - self.last_line < self.interval_s:
                return
            for step, since in self.current.values():
                if now - since >= self.interval_s:  # a step shorter than that is never reported
                    self._write(f"{describe(step)} ({now - since:.0f} s)")

    def on_finish(self, summary: Any, completed: bool) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 1)

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.interval_s)):
            self.tick()

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stdout
        print(line, file=stream, flush=True)
        self.last_line = self.clock()


class LiveProgress(RoundObserver):
    """Transient `rich` progress bars on a terminal, one per unfinished step (see the module docstring).

    The round lines other observers print go above the bars (rich redirects stdout while it draws).
    """

    def __init__(self, stream: TextIO | None = None, auto_refresh: bool = True) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bars

        self.console = Console(file=stream) if stream is not None else Console()
        self.bars = Bars(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                         TextColumn("{task.fields[count]}"), TimeElapsedColumn(), console=self.console,
                         transient=True, auto_refresh=auto_refresh)
        self.tasks: dict[tuple[str, str], Any] = {}
        self.started = False
        self._escape = escape

    def on_progress(self, step: Progress) -> None:
        if not self.started:
            self.bars.start()
            self.started = True
        key = (step.stage, step.label)
        if step.finished:
            task = self.tasks.pop(key, None)
            if task is not None:
                self.bars.remove_task(task)
                self.bars.refresh()  # the next line printed above must not bring the bar back
            return
        total = step.total or None  # None: a phase with no count (the bar pulses)
        count = f"{step.done}/{step.total} {UNITS.get(step.stage, '')}" if step.total else ""
        if key not in self.tasks:
            title = self._escape(bar_title(step))  # a set or phase name is text, never markup
            self.tasks[key] = self.bars.add_task(title, total=total, count=count)
        self.bars.update(self.tasks[key], completed=step.done, total=total, count=count)

    def on_finish(self, summary: Any, completed: bool) -> None:
        if self.started:
            self.bars.stop()
            self.started = False


def progress_display(mode: str = "auto", stream: TextIO | None = None) -> RoundObserver:
    """The progress observer for ``mode`` (one of :data:`PROGRESS_MODES`): ``auto`` is live bars when
    ``stream`` (default stdout) is a terminal and plain lines otherwise; ``off`` shows nothing."""
    if mode not in PROGRESS_MODES:
        raise FedRayError(f"progress mode {mode!r} is unknown: use one of {', '.join(PROGRESS_MODES)}")
    target = stream or sys.stdout
    if mode == "auto":
        mode = "live" if _is_terminal(target) else "plain"
    if mode == "off":
        return RoundObserver()
    return LiveProgress(stream) if mode == "live" else PlainProgress(stream)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream is no terminal
        return False
