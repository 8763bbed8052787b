"""Actor groups: the unit of the client actor pool, and how many of them a cluster holds.

A group is ``resources.actors_per_client`` client actors that train one client together. With one
actor (the default) it is just that actor. With N > 1 the members form one DeepSpeed data-parallel
process group: rank 0 picks an address and port, every member joins it (world size N), and a client's
fit runs on all N at once, each on its slice of every batch (see :mod:`fedray.client.deepspeed`);
rank 0's report and adapter are the client's result.

The N members are reserved together by a placement group (one bundle per actor, strategy PACK), so a
group is placed whole or not at all. Inside a Ray Tune trial the trial's own placement group already
holds one bundle per actor (:func:`fedray.tune.trainable.trial_bundles`) and captures the actors
created in it; a nested group would reserve the same resources a second time, outside the trial, so
there the members are created plainly and land in the trial's bundles.

A member that dies (or fails) leaves the others waiting in a collective: the whole group fails the fit
and is replaced (:class:`~fedray.engine.pool.ActorPool` does both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import ray
from ray.util.placement_group import get_current_placement_group, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from fedray.config.schema import ResourcesConfig
from fedray.engine.tasks import FitTask
from fedray.errors import SchedulingError


def actor_bundle(res: ResourcesConfig) -> dict[str, float]:
    """What one client actor reserves."""
    return {"CPU": res.cpus_per_actor, **({"GPU": res.gpus_per_actor} if res.gpus_per_actor else {})}


class ActorGroup:
    """``size`` client actors that serve one client at a time (see the module docstring)."""

    def __init__(self, actor_cls: type, args: tuple, res: ResourcesConfig) -> None:
        self.size = res.actors_per_client
        self.placement = None
        options: dict[str, Any] = dict(num_cpus=res.cpus_per_actor, num_gpus=res.gpus_per_actor,
                                       max_concurrency=1)
        remote_cls = ray.remote(actor_cls)
        if self.size > 1 and get_current_placement_group() is None:
            self.placement = placement_group([actor_bundle(res)] * self.size, strategy="PACK")
            self.members = [
                remote_cls.options(**options, scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.placement, placement_group_bundle_index=rank)).remote(*args)
                for rank in range(self.size)]
        else:
            self.members = [remote_cls.options(**options).remote(*args) for _ in range(self.size)]
        self.joined: list[Any] = self._form() if self.size > 1 else []

    def _form(self) -> list[Any]:
        # Ray resolves a top-level ObjectRef argument before the call runs: every member waits for rank
        # 0's address, then all block in init_process_group until the last one has joined.
        address = self.members[0].rendezvous.remote()
        return [member.join_group.remote(address, rank, self.size)
                for rank, member in enumerate(self.members)]

    def fit(self, task: FitTask, start: Any, attempt: int, objective: Any = None) -> GroupFit:
        """Dispatch ``task`` to every member, starting from the adapter ``start`` (an ObjectRef) with
        ``objective`` (an ObjectRef; None: the task's own); rank 0's returns are the client's."""
        args = (task, start) if objective is None else (task, start, objective)
        refs = [member.fit.options(num_returns=2).remote(*args) for member in self.members]
        return GroupFit(group=self, task=task, attempt=attempt, report_ref=refs[0][0], params_ref=refs[0][1],
                        pending={report for report, _ in refs})

    def fit_chunk(self, tasks: Sequence[FitTask], starts: Sequence[Any],
                  objectives: Sequence[Any]) -> GroupFit:
        """Dispatch several fits as one call (a group of one only; see :mod:`fedray.engine.chunking`).

        ``starts[i]`` and ``objectives[i]`` (ObjectRefs; an objective may be None: the task's own) go as
        the call's top-level arguments, each distinct one once, so Ray resolves them before the call.
        """
        if self.size != 1:
            raise SchedulingError(f"a group of {self.size} actors trains one fit per call, not {len(tasks)}: "
                                  f"set resources.fits_per_call to 1 or null for group clients")
        inputs: list[Any] = []
        slot: dict[int, int] = {}  # id of an input → its position among the call's arguments

        def position(ref: Any) -> int | None:
            if ref is None:
                return None
            if id(ref) not in slot:
                slot[id(ref)] = len(inputs)
                inputs.append(ref)
            return slot[id(ref)]

        start_slots = [position(ref) for ref in starts]
        objective_slots = [position(ref) for ref in objectives]
        reports, params = self.members[0].fit_chunk.options(num_returns=2).remote(
            tuple(tasks), start_slots, objective_slots, *inputs)
        return GroupFit(group=self, task=tasks[0], attempt=0, report_ref=reports, params_ref=params,
                        pending={reports}, chunk=tuple(tasks))

    def kill(self) -> None:
        for member in self.members:
            ray.kill(member)
        if self.placement is not None:
            remove_placement_group(self.placement)
            self.placement = None


@dataclass(eq=False)
class GroupFit:
    """One client's fit in flight on one group: done when every member's report is back."""

    group: ActorGroup
    task: FitTask
    attempt: int
    report_ref: Any
    params_ref: Any
    pending: set = field(default_factory=set)  # member report refs not back yet
    report: Any = None  # rank 0's report, once fetched (a call of several fits: the list of their reports)
    chunk: tuple[FitTask, ...] = ()  # a call of several fits: their tasks (``task`` is the first)

    @property
    def tasks(self) -> tuple[FitTask, ...]:
        """Every fit this call carries."""
        return self.chunk or (self.task,)


def fitting_groups(res: ResourcesConfig, nodes: Sequence[dict] | None = None) -> int | None:
    """How many groups the cluster's alive nodes hold (None: unbounded, the actors ask for nothing).

    Counted per node (an actor cannot straddle two), then grouped: a PACK placement group may spread
    its bundles over nodes when one node cannot hold them all.
    """
    need = {k: v for k, v in actor_bundle(res).items() if v > 0}
    if not need:
        return None
    nodes = ray.nodes() if nodes is None else nodes
    actors = 0
    for node in nodes:
        if node.get("Alive", True):
            have = node.get("Resources", {})
            actors += min(math.floor(have.get(k, 0.0) / v + 1e-9) for k, v in need.items())
    return actors // res.actors_per_client


def cluster_totals(nodes: Sequence[dict] | None = None) -> dict[str, float]:
    """CPU and GPU over the alive nodes."""
    nodes = ray.nodes() if nodes is None else nodes
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    return {k: sum(r.get(k, 0.0) for r in alive) for k in ("CPU", "GPU")}
