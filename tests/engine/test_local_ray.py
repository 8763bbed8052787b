"""The lean local Ray head (fedray/engine/local_ray.py): what it starts, what it stops, and the
private Ray interfaces it relies on (a Ray upgrade that changes them fails here first)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from fedray.engine import local_ray, runtime


def test_the_installed_ray_has_every_private_interface_the_lean_head_uses():
    # If this fails after a Ray upgrade, runs still work (ray.init, with its two monitors) but lose
    # the saving: update fedray/engine/local_ray.py to the new interface.
    assert local_ray.lean_api_problem() is None


def test_the_installed_ray_starts_the_api_server_through_the_hook_the_lean_head_overrides():
    # If this fails after a Ray upgrade, the lean head starts Ray's API server again (dashboard.py,
    # ~90 MiB, unused by a run) and logs why: update local_ray._node_class to the new hook.
    assert local_ray.api_server_problem() is None


def _starts_no_api_server(self):
    self.start_gcs_server()


def test_a_changed_api_server_hook_is_named_and_the_head_keeps_its_api_server(monkeypatch, caplog):
    from ray._private.node import Node

    monkeypatch.setattr(Node, "start_head_processes", _starts_no_api_server)
    assert "no longer calls self.start_api_server" in local_ray.api_server_problem()
    with caplog.at_level(logging.WARNING, logger=local_ray.__name__):
        assert local_ray.head_node_class() is Node
    assert "starting Ray's API server" in caplog.text and "no longer calls" in caplog.text
    monkeypatch.setattr(Node, "start_api_server", lambda self, include_dashboard: None)
    assert "Node.start_api_server takes no raise_on_failure" in local_ray.api_server_problem()


def test_the_head_node_skips_the_api_server_only_when_the_dashboard_is_off(monkeypatch, caplog):
    from ray._private.node import Node

    started: list[tuple] = []
    monkeypatch.setattr(Node, "start_api_server",
                        lambda self, *, include_dashboard, raise_on_failure: started.append(
                            (include_dashboard, raise_on_failure)))
    with caplog.at_level(logging.WARNING, logger=local_ray.__name__):
        node_class = local_ray.head_node_class()
    assert issubclass(node_class, Node) and node_class is not Node and not caplog.text
    head = object.__new__(node_class)  # the hook alone: no processes start here
    head.start_api_server(include_dashboard=False, raise_on_failure=False)
    assert started == []
    head.start_api_server(include_dashboard=True, raise_on_failure=True)
    head.start_api_server(include_dashboard=None, raise_on_failure=False)
    assert started == [(True, True), (None, False)]


def test_the_session_cluster_runs_no_api_server(ray_cluster):
    """The engine, resume, fault and Tune tests of this session run on this head: without it."""
    commands = _commands(psutil.Process().children(recursive=True))
    assert any("raylet" in c for c in commands)
    assert not [c for c in commands if "dashboard/dashboard.py" in c]
    assert not ray_cluster._private.worker._global_node.webui_url


def _commands(processes) -> list[str]:
    """The command lines of ``processes`` that still run."""
    out = []
    for process in processes:
        try:
            out.append(" ".join(process.cmdline()))
        except psutil.Error:
            pass
    return out


def test_a_changed_private_interface_is_named(monkeypatch):
    monkeypatch.setattr(local_ray, "_PRIVATE_API", (("ray._private.node", "Node", ("head", "no_such_flag")),))
    assert "ray._private.node.Node takes no no_such_flag" in local_ray.lean_api_problem()
    monkeypatch.setattr(local_ray, "_PRIVATE_API", (("ray._private.node", "NoSuchNode", ()),))
    assert "ray._private.node.NoSuchNode is gone" in local_ray.lean_api_problem()


def test_without_the_private_interface_ray_init_starts_the_cluster_and_says_why(monkeypatch, caplog):
    calls: list[dict] = []
    monkeypatch.setattr(local_ray, "lean_api_problem", lambda: "ray._private.node.Node is gone (Ray 9)")
    monkeypatch.setattr(local_ray, "start_lean_head", lambda *a: pytest.fail("the lean head was started"))
    monkeypatch.setattr(local_ray.ray, "init", lambda **kwargs: calls.append(kwargs) or "context")
    with caplog.at_level(logging.WARNING, logger=local_ray.__name__):
        assert local_ray.start_local_ray(3, {"a": 1}, log_monitor=False, log_to_driver=False) == "context"
    assert calls == [{"num_cpus": 3, "include_dashboard": False, "_system_config": {"a": 1},
                      "log_to_driver": False}]
    assert "ray._private.node.Node is gone (Ray 9)" in caplog.text


@pytest.mark.parametrize("log_monitor", [False, True])
def test_the_head_runs_no_autoscaler_monitor_and_a_log_monitor_only_when_asked(log_monitor):
    params = local_ray.head_params(2, dict(runtime.LEAN_SYSTEM_CONFIG), log_monitor)
    assert params.no_monitor is True and params.include_log_monitor is log_monitor
    assert params.include_dashboard is False and params.num_cpus == 2
    assert params.num_gpus is None  # detected by the node, as ray.init does
    assert params._system_config == runtime.LEAN_SYSTEM_CONFIG


def test_a_failed_connection_stops_the_head_it_started(monkeypatch):
    class _Head:
        address, killed = "127.0.0.1:1", False

        def kill_all_processes(self, **kwargs):
            self.killed = True

    head = _Head()
    monkeypatch.setattr(local_ray, "start_lean_head", lambda *a: head)

    def refuse(**kwargs):
        raise ConnectionError("refused")

    monkeypatch.setattr(local_ray.ray, "init", refuse)
    with pytest.raises(ConnectionError):
        local_ray.start_local_ray(1, {}, log_monitor=False)
    assert head.killed


# A fresh interpreter starts Ray as a run does and reports what it sees as one JSON line; then it
# shuts Ray down (or, with "kill", kills itself with SIGKILL, as a crashed driver would).
_DRIVER = """
import json, os, signal, sys, time
import psutil, ray
from fedray.config.schema import ResourcesConfig
from fedray.engine.runtime import actor_output, begin_local_ray, ensure_ray

early = begin_local_ray(ResourcesConfig()) if sys.argv[2:] == ["early"] else None
if early is not None:
    time.sleep(3.0)  # long after the head has started: its processes must outlive that
start = ensure_ray(ResourcesConfig(), early)

@ray.remote
class Talker:
    def talk(self):
        print("a line from the actor", file=sys.stderr, flush=True)
        return os.getpid()

    def fail(self):
        raise ValueError("the actor failed on purpose")

talker = Talker.remote()
actor_pid = ray.get(talker.talk.remote(), timeout=120)
try:
    ray.get(talker.fail.remote(), timeout=120)
    error = ""
except ray.exceptions.RayTaskError as exc:
    error = str(exc)
alive_nodes = sum(node["Alive"] for node in ray.nodes())
ray.kill(talker)
time.sleep(1.0)  # the worker's stderr file is flushed as it is written; give the kill a moment
children = {c.pid: " ".join(c.cmdline()) for c in psutil.Process().children(recursive=True)}
lines = actor_output(start.session_dir, ray.get_runtime_context().get_job_id())
print(json.dumps({"started": start.started, "actor_pid": actor_pid, "children": children, "lines": lines,
                  "head": ray._private.worker._global_node.is_head(), "error": error,
                  "alive_nodes": alive_nodes}), flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
ray.shutdown()
if early is not None:
    early.close()
"""

#: The processes that make the node: a crashed driver must not leave them behind.
_CORE = ("gcs_server", "raylet")


def _drive(ending: str, env_extra: dict[str, str] | None = None,
           *start: str) -> tuple[dict, subprocess.CompletedProcess]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(env_extra or {})
    done = subprocess.run([sys.executable, "-c", _DRIVER, ending, *start], capture_output=True, text=True,
                          timeout=240, env=env)
    report = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert report, f"the driver reported nothing (rc {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(report[-1]), done


def _alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _wait_gone(pids, within_s: float = 60.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    return _alive(pids)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("start", [(), ("early",)], ids=["ensure_ray", "early head"])
def test_a_started_ray_has_no_monitors_or_api_server_runs_actors_keeps_their_output_and_stops_on_shutdown(
        start):
    report, done = _drive("shutdown", None, *start)
    assert done.returncode == 0, done.stderr[-3000:]
    commands = list(report["children"].values())
    assert report["started"] and report["head"]
    assert any("gcs_server" in c for c in commands) and any("raylet" in c for c in commands)
    assert not [c for c in commands if "monitor.py" in c]  # neither monitor.py nor log_monitor.py
    assert not [c for c in commands if "dashboard/dashboard.py" in c]  # no API server either
    assert "ValueError: the actor failed on purpose" in report["error"]  # failures reach the driver
    assert report["alive_nodes"] == 1
    assert "a line from the actor" in report["lines"]  # what the run log copies at the end
    terminal = [line for line in (done.stdout + done.stderr).splitlines() if not line.startswith("{")]
    assert not [line for line in terminal if "a line from the actor" in line]  # not forwarded there
    core = [int(pid) for pid, c in report["children"].items() if any(name in c for name in _CORE)]
    assert _wait_gone(core) == []  # ray.shutdown stopped the node it did not start itself


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_forwarded_actor_output_brings_the_log_monitor_and_a_killed_driver_leaves_no_node():
    report, done = _drive("kill", {runtime.ACTOR_LOGS_ENV: "1"})
    assert done.returncode == -signal.SIGKILL
    commands = list(report["children"].values())
    assert [c for c in commands if "log_monitor.py" in c] and not [c for c in commands if "/monitor.py" in c]
    assert not [c for c in commands if "dashboard/dashboard.py" in c]
    core = [int(pid) for pid, c in report["children"].items() if any(name in c for name in _CORE)]
    assert core and _wait_gone(core) == []


# A head started early and never connected to (the run failed first): closing it stops its processes.
_UNUSED_HEAD = """
import json, time
import psutil
from fedray.config.schema import ResourcesConfig
from fedray.engine.runtime import begin_local_ray

early = begin_local_ray(ResourcesConfig())
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    children = {c.pid: " ".join(c.cmdline()) for c in psutil.Process().children(recursive=True)}
    if all(any(name in c for c in children.values()) for name in ("gcs_server", "raylet")):
        break
    time.sleep(0.2)
early.close()
print(json.dumps({"children": children}), flush=True)
"""


@pytest.mark.timeout(300)
def test_an_early_head_the_run_never_connected_to_is_stopped_by_close():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", _UNUSED_HEAD], capture_output=True, text=True, timeout=240,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    children = json.loads(done.stdout.strip().splitlines()[-1])["children"]
    core = [int(pid) for pid, c in children.items() if any(name in c for name in _CORE)]
    assert core and _wait_gone(core, within_s=30) == []


def test_no_early_head_when_joining_a_cluster_or_ray_is_up(monkeypatch):
    from fedray.config.schema import ResourcesConfig

    assert runtime.begin_local_ray(ResourcesConfig(ray_address="10.0.0.1:6379")) is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert runtime.begin_local_ray(ResourcesConfig()) is None
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(runtime.ray, "is_initialized", lambda: True)
    assert runtime.begin_local_ray(ResourcesConfig()) is None
