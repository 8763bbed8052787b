"""Peak memory of a whole process tree: a driver, its Ray services, workers and actors, as a user's run has.

A background thread samples the resident set size (RSS) of the root process and every descendant every
``interval_s`` (0.1 s by default); at the end it gives, per *role*, the peak of the role's summed RSS at one
sample and the peak of any one of its processes. Roles come from the command line Ray gives its processes
(a process counts under the last role it had, see :class:`ProcessTreeSampler`):

- ``driver``: the root process (``python -m fedray run``, or the plain loop);
- ``actor:<Class>``: a Ray actor (Ray titles it ``ray::<Class>`` or ``ray::<Class>.<method>``);
- ``ray idle workers``: pooled Ray workers that hold no actor (``ray::IDLE``, ``default_worker.py``);
- ``ray service:<name>`` (each also counted in ``ray services``): GCS, raylet, monitors, dashboard and
  runtime-env agents (the agents are titled like actors: :data:`RAY_OWN_TITLES`);
- ``other:<name>``: anything else under the root.

RSS counts a shared page (torch's libraries, say) once per process that maps it, so a sum of RSS is an
upper bound of the memory the tree takes from the machine. The proportional set size (PSS), which splits
shared pages among their users, is read too but only every ``pss_every``-th sample: it costs ~10× more.
The descendant list is refreshed every ``rescan_every``-th sample; in between, known processes are read.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

MIB = 2**20
#: Ray's own processes that Ray titles like actors (``ray::DashboardAgent``): services, not user actors.
RAY_OWN_TITLES = frozenset({"DashboardAgent", "RuntimeEnvAgent"})


@dataclass
class RolePeak:
    """Peaks of one role: its summed RSS at one sample, and any one of its processes."""

    total_mb: float = 0.0
    process_mb: float = 0.0
    processes: int = 0  # the most processes of this role seen at one sample


@dataclass
class TreeMemory:
    """What :class:`ProcessTreeSampler` saw over a whole run."""

    peak_rss_mb: float = 0.0  # the tree's summed RSS at its highest sample
    peak_pss_mb: float = 0.0  # the tree's summed PSS at its highest (sparser) sample
    samples: int = 0
    roles: dict[str, RolePeak] = field(default_factory=dict)

    def role(self, name: str) -> RolePeak:
        return self.roles.get(name, RolePeak())

    def to_json(self) -> dict[str, Any]:
        return {"peak_rss_mb": self.peak_rss_mb, "peak_pss_mb": self.peak_pss_mb, "samples": self.samples,
                "roles": {k: vars(v) for k, v in sorted(self.roles.items())}}


def process_roles(cmdline: list[str], is_root: bool) -> tuple[str, ...]:
    """The roles a process counts under (its own, and a group role for Ray services)."""
    if is_root:
        return ("driver",)
    title = " ".join(cmdline).strip()
    if title.startswith("ray::"):
        name = title[len("ray::"):].split(maxsplit=1)[0].split(".", 1)[0] if len(title) > 5 else "?"
        if name in RAY_OWN_TITLES:
            return (f"ray service:{name}", "ray services")
        return ("ray idle workers",) if name == "IDLE" else (f"actor:{name}",)
    if any(arg.endswith("default_worker.py") for arg in cmdline):
        return ("ray idle workers",)
    name = _program_name(cmdline)
    if any("/ray/" in arg or arg.startswith("ray") for arg in cmdline[:3]):
        return (f"ray service:{name}", "ray services")
    return (f"other:{name}",)


def _program_name(cmdline: list[str]) -> str:
    """``raylet`` for a binary, ``dashboard/agent`` for a Python script (its folder and stem)."""
    if not cmdline:
        return "?"
    scripts = [arg for arg in cmdline[1:4] if arg.endswith(".py")]
    if scripts:
        parent, stem = os.path.split(scripts[0])
        return f"{os.path.basename(parent)}/{stem[:-3]}"
    return os.path.basename(cmdline[0])


def _pss_mb(proc: psutil.Process) -> float:
    """The process's PSS in MiB; 0 where the platform has none or the process just ended."""
    try:
        return proc.memory_full_info().pss / MIB
    except (psutil.Error, AttributeError):
        return 0.0


class BackgroundSampler:
    """Calls :meth:`sample` every ``interval_s`` seconds in a daemon thread, inside a ``with`` block."""

    interval_s: float = 0.1

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)

    def __enter__(self) -> BackgroundSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            if self.sample() is False:  # the sampler has nothing more to read
                return
            self._stop.wait(max(0.0, self.interval_s - (time.perf_counter() - started)))

    def sample(self) -> bool | None:
        raise NotImplementedError


class ProcessTreeSampler(BackgroundSampler):
    """Samples a process tree's memory in a background thread: ``with ProcessTreeSampler(pid) as s: ...``.

    ``s.result()`` gives the :class:`TreeMemory`; :meth:`sample` takes one sample (tests call it directly).
    A process counts under the last role it had that is not an idle worker, over the whole run: a Ray
    worker is titled ``ray::IDLE`` while it imports an actor's class and ``ray::<Class>`` only once the
    actor is built, and that start belongs to the actor.
    """

    def __init__(self, root_pid: int, interval_s: float = 0.1, rescan_every: int = 3,
                 pss_every: int = 10) -> None:
        self.root = psutil.Process(root_pid)
        self.interval_s, self.rescan_every, self.pss_every = interval_s, rescan_every, pss_every
        self._known: dict[int, psutil.Process] = {root_pid: self.root}
        self._roles: dict[int, tuple[str, ...]] = {}  # pid → roles (see the class docstring)
        self._rss: list[dict[int, float]] = []  # per sample: pid → RSS MiB
        self._peak_pss = 0.0
        self._lock = threading.Lock()
        super().__init__()

    def sample(self) -> None:
        """Read every process of the tree once."""
        count = len(self._rss)
        if count % self.rescan_every == 0:
            self._rescan()
        with_pss = count % self.pss_every == 0
        rss: dict[int, float] = {}
        pss = 0.0
        for pid, proc in list(self._known.items()):
            try:
                cmdline = proc.cmdline()
                roles = process_roles(cmdline, pid == self.root.pid)
                rss[pid] = proc.memory_info().rss / MIB
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._known.pop(pid, None)  # ended
                rss.pop(pid, None)
                continue
            pss += _pss_mb(proc) if with_pss else 0.0
            # An exiting process shows an empty command line: it keeps the role it had.
            if cmdline and (roles != ("ray idle workers",) or pid not in self._roles):
                self._roles[pid] = roles
        with self._lock:
            self._rss.append(rss)
            self._peak_pss = max(self._peak_pss, pss)

    def result(self) -> TreeMemory:
        """Peaks over every sample so far, each process under its final role."""
        with self._lock:
            samples, roles, peak_pss = list(self._rss), dict(self._roles), self._peak_pss
        memory = TreeMemory(peak_pss_mb=peak_pss, samples=len(samples))
        for rss in samples:
            memory.peak_rss_mb = max(memory.peak_rss_mb, sum(rss.values()))
            totals: dict[str, list[float]] = {}
            for pid, value in rss.items():
                for role in roles[pid]:
                    totals.setdefault(role, []).append(value)
            for role, values in totals.items():
                peak = memory.roles.setdefault(role, RolePeak())
                peak.total_mb = max(peak.total_mb, sum(values))
                peak.process_mb = max(peak.process_mb, max(values))
                peak.processes = max(peak.processes, len(values))
        return memory

    def _rescan(self) -> None:
        try:
            children = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for child in children:
            self._known.setdefault(child.pid, child)
