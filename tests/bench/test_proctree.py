"""The process-tree sampler sums a process and its descendants and names their roles."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from fedray.bench.proctree import ProcessTreeSampler, process_roles

CHILD_MB = 200
# A parent python that starts a child python holding CHILD_MB of touched memory; both wait on stdin.
PARENT = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c",
    "import sys; block = bytearray({CHILD_MB} * 2**20); print('ready', flush=True); sys.stdin.read()"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "ready"
print(child.pid, flush=True)
sys.stdin.read()
child.stdin.close()
child.wait()
"""


@pytest.fixture
def parent_and_child():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        child_pid = int(parent.stdout.readline())
        yield parent.pid, child_pid
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)


def test_sums_the_parent_and_its_child(parent_and_child):
    parent_pid, child_pid = parent_and_child
    sampler = ProcessTreeSampler(parent_pid, pss_every=1)
    sampler.sample()
    sampler.sample()
    memory = sampler.result()
    parent_mb = psutil.Process(parent_pid).memory_info().rss / 2**20
    child_mb = psutil.Process(child_pid).memory_info().rss / 2**20
    assert child_mb > CHILD_MB
    assert memory.samples == 2
    assert memory.peak_rss_mb == pytest.approx(parent_mb + child_mb, rel=0.05)
    assert memory.role("driver").process_mb == pytest.approx(parent_mb, rel=0.05)
    assert memory.role("other:python").process_mb == pytest.approx(child_mb, rel=0.05)
    assert 0 < memory.peak_pss_mb <= memory.peak_rss_mb


def test_the_background_thread_samples_until_stopped(parent_and_child):
    with ProcessTreeSampler(parent_and_child[0], interval_s=0.02) as sampler:
        time.sleep(0.3)
    assert sampler.result().samples >= 5
    assert sampler.result().peak_rss_mb > CHILD_MB


def test_roles_follow_ray_process_titles():
    assert process_roles(["python", "-m", "fedray", "run"], is_root=True) == ("driver",)
    assert process_roles(["ray::ClientActor.fit"], is_root=False) == ("actor:ClientActor",)
    assert process_roles(["ray::AggregatorActor", ""], is_root=False) == ("actor:AggregatorActor",)
    assert process_roles(["ray::IDLE"], is_root=False) == ("ray idle workers",)
    assert process_roles(["ray::RuntimeEnvAgent"], is_root=False) == \
        ("ray service:RuntimeEnvAgent", "ray services")
    assert process_roles(["/venv/lib/python3.11/site-packages/ray/core/src/ray/gcs/gcs_server", "--x"],
                         is_root=False) == ("ray service:gcs_server", "ray services")
    assert process_roles(["/venv/bin/python", "-u", "/venv/site-packages/ray/_private/log_monitor.py"],
                         is_root=False) == ("ray service:_private/log_monitor", "ray services")


def test_a_worker_counts_under_the_actor_it_became(monkeypatch):
    """A Ray worker is ``ray::IDLE`` while it imports the actor's class: that memory is the actor's."""
    titles = iter([["ray::IDLE"], ["ray::ClientActor"]])
    sampler = ProcessTreeSampler(psutil.Process().pid)
    monkeypatch.setattr(sampler, "_rescan", lambda: None)
    monkeypatch.setattr(sampler, "_known", {-1: _FakeProcess(titles, [300, 500])})
    sampler.sample()
    sampler.sample()
    memory = sampler.result()
    assert "ray idle workers" not in memory.roles
    assert memory.role("actor:ClientActor").process_mb == pytest.approx(500)
    assert memory.peak_rss_mb == pytest.approx(500)


class _FakeProcess:
    def __init__(self, titles, rss_mb):
        self.titles, self.rss = titles, iter(rss_mb)

    def cmdline(self):
        return next(self.titles)

    def memory_info(self):
        return type("Mem", (), {"rss": next(self.rss) * 2**20})()
