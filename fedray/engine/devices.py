"""The device a client actor computes on, and its memory: a cap per actor, release between virtual
clients, and a peak that is measured per fit.

Ray may assign an actor a GPU that torch cannot see (a cluster that declares fake GPUs, or a GPU node
without CUDA torch): the device is whatever torch sees, and every CUDA call here is skipped on CPU.
"""

from __future__ import annotations

import gc
import logging
import resource

import torch

logger = logging.getLogger(__name__)


def pick_device() -> torch.device:
    """The device torch can use here (Ray may assign a GPU that torch cannot see, e.g. a fake one)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cap_memory(device: torch.device, gpus_per_actor: float, enabled: bool = True) -> float | None:
    """Limit this process to its share of the GPU when it holds a fraction of one; the fraction set.

    Ray's fractional GPUs only count: two actors at 0.5 share one GPU with nothing stopping either from
    taking all its memory. ``set_per_process_memory_fraction`` makes the caching allocator raise an
    out-of-memory error past the share instead, so one actor cannot starve its neighbour.
    """
    if not enabled or device.type != "cuda" or not 0.0 < gpus_per_actor < 1.0:
        return None
    torch.cuda.set_per_process_memory_fraction(gpus_per_actor, device)
    logger.info("GPU memory of this actor capped at %.0f%% of %s", 100 * gpus_per_actor, device)
    return gpus_per_actor


def begin_fit(device: torch.device) -> None:
    """Start a fit: its reported peak is its own (the round's), not the process's all-time one."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def release_memory(device: torch.device) -> None:
    """After a virtual client: collect what its fit left (graphs, optimizer state, engine buffers) and
    hand the cached CUDA blocks back, so the next client (or a neighbouring actor) can use them.
    The caller drops its own references first. On CPU it does nothing: freed tensors go back to the
    allocator by reference counting, and a full ``gc.collect()`` per fit would cost tens of milliseconds
    on the hot path of a 1,000-client run for memory nobody else can take."""
    if device.type != "cuda":
        return
    gc.collect()
    torch.cuda.empty_cache()


def peak_memory_mb(device: torch.device | None = None) -> float:
    """Peak memory in MiB: CUDA's max allocated since :func:`begin_fit` on a GPU, else the process's
    max RSS so far (the OS keeps no resettable peak)."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
