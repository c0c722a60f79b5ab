"""Process-group setup for one process or many. Several processes are always started by a real launcher
(torchrun); `reasonkit train --nproc-per-node N` just execs torchrun with the same command line."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        import torch.distributed as td

        if self.world > 1 and td.is_initialized():
            td.barrier()

    def all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        """Element-wise sum (or ``op="max"``) over ranks, in float64."""
        if self.world == 1:
            return list(values)
        import torch

        tensor = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX if op == "max" else
                                     torch.distributed.ReduceOp.SUM)
        return tensor.tolist()

    def mean(self, value: float) -> float:
        """``value`` averaged over ranks (e.g. the step's loss: what the optimizer step actually used)."""
        return value if self.world == 1 else self.all_reduce([value])[0] / self.world

    def gather(self, tensors: dict[str, Any]) -> dict[str, Any]:
        """Each rank's 1-D tensors concatenated (lengths may differ), so logs describe the whole step."""
        if self.world == 1:
            return tensors
        import torch

        gathered: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(gathered, {k: v.tolist() for k, v in tensors.items()})
        return {k: torch.tensor([x for part in gathered for x in part[k]], dtype=torch.float32) for k in tensors}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed() -> Dist:
    """Initialise torch.distributed through DeepSpeed (gloo on CPU, nccl on GPU); a plain `python` process
    becomes a world of one (without these variables DeepSpeed would look for MPI)."""
    import torch

    init_method = store_dir = None
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(_free_port()))
        # A world of one needs no rendezvous port (a free port picked now can be taken by the time it binds)
        import tempfile

        store_dir = tempfile.mkdtemp(prefix="reasonkit-pg-")
        init_method = f"file://{store_dir}/store"
    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if on_gpu:
        torch.cuda.set_device(local_rank)
    if not torch.distributed.is_initialized():
        # Registered before the group exists, so a failed init still removes the folder. atexit, not the end of
        # the trainer: the group lives as long as the process (a second run in-process reuses it).
        atexit.register(_shutdown, store_dir)
        deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo", verbose=False, init_method=init_method,
                                   rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
    elif store_dir:  # someone else's group: ours is not needed
        shutil.rmtree(store_dir, ignore_errors=True)
    return Dist(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size(), local_rank=local_rank,
                device=f"cuda:{local_rank}" if on_gpu else "cpu")


def _shutdown(store_dir: str | None) -> None:
    """At exit, normal or by an exception: destroy the group we created (NCCL warns at every exit otherwise and
    may leak resources) and remove the file store's folder (one /tmp/reasonkit-pg-* per run otherwise)."""
    try:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()
    except Exception as exc:  # exiting anyway: say so, never mask the run's own exit status
        print(f"warning: destroying the process group failed: {exc}", file=sys.stderr)
    finally:
        if store_dir:
            shutil.rmtree(store_dir, ignore_errors=True)


def relaunch_with_torchrun(argv: list[str], *, nproc_per_node: int, nnodes: int, node_rank: int | None,
                           rdzv_endpoint: str | None, rdzv_id: str | None) -> int:
    """Run this same `reasonkit train ...` command under torchrun (the real launcher) and return its exit code."""
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [torchrun, f"--nproc-per-node={nproc_per_node}", f"--nnodes={nnodes}"]
    if nnodes > 1:
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint or 'localhost:29500'}",
                f"--rdzv-id={rdzv_id or 'reasonkit'}"]
        if node_rank is not None:
            cmd.append(f"--node-rank={node_rank}")
    else:
        cmd.append("--standalone")
    cmd += ["-m", "reasonkit", *argv]
    import subprocess

    env = {**os.environ, "REASONKIT_LAUNCHED": "1"}
    return subprocess.call(cmd, env=env)
