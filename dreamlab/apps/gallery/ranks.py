"""The ranks of a gallery run: torch.distributed when torchrun started this process (WORLD_SIZE > 1), else a
group of one, so the runner has one code path."""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch

from dreamlab.devices import resolve_device


class RankGroup:
    """torch.distributed when torchrun started this process (WORLD_SIZE > 1), else a group of one."""

    def __init__(self, rank: int = 0, world: int = 1, owned: bool = False):
        self.rank, self.world, self.owned = rank, world, owned

    @classmethod
    def start(cls, device: str | torch.device | None) -> tuple[RankGroup, torch.device]:
        """The group this process belongs to (joining torchrun's, one GPU per rank) and its device."""
        dev = resolve_device(device)
        world = int(os.environ.get("WORLD_SIZE") or 1)
        if world <= 1:
            return cls(), dev
        import torch.distributed as dist

        if dev.type == "cuda" and (device is None or torch.device(device).index is None):  # one GPU per rank
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK") or 0))
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        owned = not dist.is_initialized()
        if owned:  # the final barrier waits for the slowest rank's share, which can take hours
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(hours=24))
        return cls(dist.get_rank(), dist.get_world_size(), owned), dev

    @property
    def distributed(self) -> bool:
        """Whether more than one process shares the work."""
        return self.world > 1

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the process group, where this group started it."""
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()
