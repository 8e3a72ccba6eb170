"""torch.distributed helpers: one code path for single-process runs and ``torchrun`` (DDP) runs.

Launch any entry script with ``torchrun --nproc_per_node N script.py ...`` (add ``--nnodes``/``--rdzv_*`` for
several machines). Each process trains on its shard of every batch order; ``--batch_size`` is per process.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    """Whether torchrun started this process (also with one process: it then joins a process group of one, so a
    one-process torchrun run exercises NCCL and DDP) or another launcher set WORLD_SIZE > 1."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> torch.device:
    """Join the process group when started by torchrun (NCCL on CUDA, gloo otherwise); return this rank's device."""
    if not launched_by_torchrun() or is_distributed():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def memory_format_for(ndim: int) -> torch.memory_format:
    """channels_last for images (N, C, H, W), channels_last_3d for clips (N, C, T, H, W)."""
    return torch.channels_last_3d if ndim == 5 else torch.channels_last


def prepare_network(network: nn.Module, device: torch.device, channels_last: bool = False,
                    compile_network: bool = False) -> nn.Module:
    """Move ``network`` to ``device`` (optionally in channels_last memory format), wrap it in
    DistributedDataParallel under torchrun, and optionally ``torch.compile`` it."""
    network = network.to(device)
    if channels_last:
        ndim = 5 if any(isinstance(m, nn.Conv3d) for m in network.modules()) else 4
        network = network.to(memory_format=memory_format_for(ndim))
    if is_distributed():
        device_ids = [device.index] if device.type == "cuda" else None
        network = nn.parallel.DistributedDataParallel(network, device_ids=device_ids)
    if compile_network:
        network = torch.compile(network)
    return network


def unwrap(network: nn.Module) -> nn.Module:
    """The plain module inside torch.compile and DistributedDataParallel wrappers (state dicts are saved from it)."""
    network = getattr(network, "_orig_mod", network)
    return network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place (a no-op in a single process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on at least one of them."""
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(value).item() > 0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()
