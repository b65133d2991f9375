"""Data-parallel training over the processes that ``accelerate launch`` (or ``torchrun``) starts.

Every process draws the same *global* batch from the same generator, keeps its own contiguous rows
(:meth:`Dist.shard`), and weights its mean loss by :meth:`Dist.weight` so that averaging the
gradients over processes (:meth:`Dist.sync_gradients`) gives the gradient of the mean over the
global batch, also when the batch does not split evenly:

    (1/W) Σ_r (W n_r / N) · mean_r(ℓ) = (1/N) Σ_i ℓ_i.

``k`` steps on ``W`` processes therefore equal ``k`` steps of one process on the combined batch, up
to the order of floating-point sums. Only the main process writes files and shows progress
(:attr:`Dist.is_main`, :meth:`Dist.main_only`); evaluation gathers every process's rows back in
their global order (:meth:`Dist.gather`), so metrics see each example exactly once. In a single
process every method here is the identity and nothing is communicated.

On CPU the processes talk through gloo, on GPUs through NCCL (chosen by ``accelerate``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from quintet.core.errors import QuintetError
from quintet.core.io import latest_checkpoint

__all__ = ["Dist", "current", "use_cpu"]


def use_cpu() -> bool:
    """Processes on a machine without a GPU (or started with ``--cpu``) form a gloo group."""
    flag = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return flag or not torch.cuda.is_available()


def current() -> "Dist":
    """This process's place in the launch: rank, number of processes and its device.

    Outside a launch (a plain ``python``/``quintet`` call) this is rank 0 of 1.
    """
    from accelerate import PartialState

    state = PartialState(cpu=use_cpu())
    return Dist(rank=state.process_index, world=state.num_processes, device=torch.device(state.device))


@dataclass(frozen=True)
class Dist:
    """Rank ``rank`` of ``world`` processes; ``device`` is where its collectives run."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this is the process that writes files and shows progress (rank 0)."""
        return self.rank == 0

    # ------------------------------------------------------------------ sharding the global batch
    def bounds(self, n: int) -> tuple[int, int]:
        """Rows ``[lo, hi)`` of ``n`` that this rank takes: contiguous, sizes differ by at most one
        (the first ``n % world`` ranks take one more)."""
        base, extra = divmod(n, self.world)
        lo = self.rank * base + min(self.rank, extra)
        return lo, lo + base + (self.rank < extra)

    def check_batch(self, n: int, what: str = "batch size") -> None:
        """Refuse a global batch that leaves a process without rows."""
        if n < self.world:
            raise QuintetError(f"{what} {n} cannot be split over {self.world} processes; "
                               f"expected at least {self.world}")

    def shard(self, *tensors: torch.Tensor) -> Any:
        """This rank's rows (dim 0) of each tensor of a global batch; one tensor in, one out."""
        if self.world == 1:
            return tensors[0] if len(tensors) == 1 else tensors
        lo, hi = self.bounds(len(tensors[0]))
        rows = tuple(t[lo:hi] for t in tensors)
        return rows[0] if len(rows) == 1 else rows

    def weight(self, n: int) -> float:
        """Factor on this rank's mean loss over its shard of an ``n``-row batch, so that averaged
        gradients are those of the mean over all ``n`` rows (1.0 in one process or an even split)."""
        lo, hi = self.bounds(n)
        return self.world * (hi - lo) / n

    # ------------------------------------------------------------------ communication
    def _group(self) -> bool:
        return self.world > 1

    def sync_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Average ``.grad`` over processes in one all-reduce. A parameter without a gradient on
        some process counts as zero there; one without a gradient everywhere keeps ``None`` (so
        optimisers skip it exactly as they would in one process)."""
        if not self._group():
            return
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        flat = torch.cat([torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).double()
                                     for p in params]),
                          torch.tensor([float(p.grad is not None) for p in params], dtype=torch.float64)])
        flat = flat.to(self.device)
        torch.distributed.all_reduce(flat)
        flat = flat.cpu()
        has = flat[-len(params):] > 0
        offset = 0
        for p, present in zip(params, has.tolist()):
            size = p.numel()
            if present:
                p.grad = (flat[offset:offset + size] / self.world).reshape(p.shape).to(p.dtype).to(p.device)
            offset += size

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy the main process's parameters and buffers to every process."""
        if not self._group():
            return
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                buffer = tensor.detach().to(self.device)
                torch.distributed.broadcast(buffer, src=0)
                tensor.copy_(buffer.to(tensor.device))

    def average_buffers(self, module: torch.nn.Module) -> None:
        """Average floating-point buffers (batch-norm running statistics) over processes, so that
        every process evaluates and saves the same model. With equal shards the running mean is
        then the one-process value; the running variance misses the spread between shards."""
        if not self._group():
            return
        with torch.no_grad():
            for buffer in module.buffers():
                if buffer.is_floating_point():
                    total = buffer.detach().double().to(self.device)
                    torch.distributed.all_reduce(total)
                    buffer.copy_((total / self.world).to(buffer.device, buffer.dtype))

    def gather(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """The ``n`` rows of a global batch from every rank's :meth:`shard` of it, in global order
        (no row repeated or dropped when ``n`` does not split evenly)."""
        if not self._group():
            return local
        lo, hi = self.bounds(n)
        if len(local) != hi - lo:
            raise QuintetError(f"rank {self.rank} holds {len(local)} rows, expected {hi - lo} of {n}")
        size = -(-n // self.world)
        kind = local.dtype
        send = local.to(self.device, torch.uint8 if kind == torch.bool else kind)
        padded = torch.zeros((size, *local.shape[1:]), dtype=send.dtype, device=self.device)
        padded[: len(send)] = send
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        torch.distributed.all_gather(parts, padded)
        sizes = [n // self.world + (r < n % self.world) for r in range(self.world)]
        return torch.cat([part[:count] for part, count in zip(parts, sizes)]).to(local.device, kind)

    def all_sum(self, value: torch.Tensor | float) -> torch.Tensor:
        """``value`` summed over processes (float64 on the CPU)."""
        total = torch.as_tensor(value, dtype=torch.float64).clone()
        if self._group():
            total = total.to(self.device)
            torch.distributed.all_reduce(total)
        return total.cpu()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` holds on some process (so that all stop at the same step)."""
        return bool(self.all_sum(float(flag)) > 0) if self._group() else bool(flag)

    def agree(self, text: str) -> str:
        """The main process's ``text`` on every process (sent as UTF-8 bytes, nothing unpickled)."""
        if not self._group():
            return text
        data = torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8)
        length = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        torch.distributed.broadcast(length, src=0)
        buffer = torch.zeros(int(length), dtype=torch.uint8, device=self.device)
        if self.is_main:
            buffer.copy_(data.to(self.device))
        torch.distributed.broadcast(buffer, src=0)
        return bytes(buffer.cpu().tolist()).decode("utf-8")

    def barrier(self) -> None:
        """Wait until every process gets here (after the main process has written a file)."""
        if self._group():
            torch.distributed.barrier()

    # ------------------------------------------------------------------ files and logs
    def main_only(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """``log`` on the main process, a no-op elsewhere (messages appear once)."""
        return log if self.is_main else (lambda message: None)

    def latest_checkpoint(self, directory: str | os.PathLike | None) -> Path | None:
        """The checkpoint every process resumes from: the one the main process's ``latest`` pointer
        names, checked to be readable on this process too (the output folder must be shared)."""
        if directory is None:
            return None
        found = latest_checkpoint(directory) if self.is_main else None
        name = self.agree(found.name if found is not None else "")
        if not name:
            return None
        path = Path(directory) / name
        if not (path / "trainer_state.json").is_file():
            raise QuintetError(f"process {self.rank} cannot read checkpoint {path} written by the main process; "
                               "the output folder must be on storage every machine shares")
        return path
