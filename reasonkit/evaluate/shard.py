"""Data-parallel eval: N processes (torchrun, srun, or `reasonkit eval --nproc-per-node N`), each a full model
replica taking a share of the questions.

Per benchmark, rank 0 alone prepares the result store (the resume check, moving an old run aside, dropping error
records for --retry-errors, cutting torn lines), reads what every file already holds, splits the questions still
to do into balanced shards by clip -- a video's questions stay on one rank, so its decoded frames and cached
vision features are reused -- and hands the plan to the other ranks in one gloo broadcast. Nobody writes before
the plan exists, so every rank plans from the same records: each question is asked exactly once, whatever number
of ranks wrote the earlier records. Each rank appends to its own shard file (fsynced per batch, as ever); reading
a store merges them (reasonkit/evaluate/store.py), so `score` and a resume see one run.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from reasonkit.errors import ReasonkitError
from reasonkit.types import Sample


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def parallel(self) -> bool:
        return self.size > 1


def world_from_env(env: dict[str, str] | None = None) -> World:
    """torchrun's RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE, else Slurm's SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID
    (a plain `srun` start), else a world of one."""
    env = os.environ if env is None else env
    for rank, size, local, local_size in (("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"),
                                          ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
                                           "SLURM_NTASKS_PER_NODE")):
        if rank in env and size in env:
            try:
                # SLURM_NTASKS_PER_NODE may read "4(x2)" on uneven allocations; only its first count matters here
                local_n = int(str(env.get(local_size, "1")).split("(")[0].split(",")[0] or 1)
                return World(int(env[rank]), int(env[size]), int(env.get(local, 0)), local_n)
            except ValueError:
                raise ReasonkitError(f"{rank}/{size}: not integers ({env[rank]!r}, {env[size]!r})") from None
    return World()


def shard_by_clip(samples: list[Sample], n: int) -> list[list[Sample]]:
    """``n`` lists of samples, balanced by question count, never splitting one clip's questions. Deterministic
    (largest clips first onto the least-loaded rank, ties to the lower rank and the earlier clip); each shard keeps
    the benchmark's order."""
    clips: dict[str, list[int]] = defaultdict(list)
    for i, sample in enumerate(samples):
        clips[str(sample.video) if sample.video is not None else sample.video_id].append(i)
    loads = [0] * n
    owner: dict[int, int] = {}
    for _, indices in sorted(clips.items(), key=lambda kv: (-len(kv[1]), kv[1][0])):
        rank = min(range(n), key=lambda r: (loads[r], r))
        loads[rank] += len(indices)
        owner.update(dict.fromkeys(indices, rank))
    shards: list[list[Sample]] = [[] for _ in range(n)]
    for i, sample in enumerate(samples):
        shards[owner[i]].append(sample)
    return shards


class Group:
    """The process group the plan travels over: gloo (CPU tensors only, so it costs no GPU memory and works
    beside NCCL or vLLM's own groups), set up from the launcher's MASTER_ADDR/MASTER_PORT."""

    def __init__(self, world: World):
        import datetime

        import torch.distributed as td

        if not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")):
            raise ReasonkitError("data-parallel eval needs MASTER_ADDR and MASTER_PORT (torchrun sets them; under "
                                 "srun export them in the batch script: the first node's host name and a free port)")
        self.world = world
        self.owned = not td.is_initialized()
        if self.owned:
            # generous: ranks reach the first plan after loading their model, which can take many minutes
            td.init_process_group("gloo", rank=world.rank, world_size=world.size,
                                  timeout=datetime.timedelta(hours=2))
        self._td = td

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        self._td.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owned and self._td.is_initialized():
            self._td.destroy_process_group()


def plan(group: Group, store, manifest: dict[str, Any], samples: list[Sample], *, resume: bool,
         retry_errors: bool):
    """(this rank's store, writing to its shard file; this rank's questions still to do). Rank 0 prepares and
    decides; a refusal there (a changed config on resume) is raised on every rank with the same message."""
    from reasonkit.evaluate.store import ResultStore

    world = group.world
    decision: dict[str, Any]
    if world.rank == 0:
        try:
            done = store.open(manifest, resume=resume)
            if retry_errors and resume and store.drop_error_records():
                done = store.recorded_ids()
            todo = [s for s in samples if s.id not in done]
            decision = {"shards": [[s.id for s in shard] for shard in shard_by_clip(todo, world.size)]}
        except ReasonkitError as exc:
            decision = {"error": str(exc), "type": type(exc).__name__}
    else:
        decision = {}
    decision = group.broadcast(decision)
    if "error" in decision:
        raise ReasonkitError(decision["error"])
    mine = set(decision["shards"][world.rank])
    return ResultStore(store.path, shard=world.rank), [s for s in samples if s.id in mine]


def pin_devices(world: World, per_rank: int) -> None:
    """Give each rank of a node its own ``per_rank`` GPUs (a replica's tensor-parallel size) through
    CUDA_VISIBLE_DEVICES, before any CUDA use. A launcher that already pinned (Slurm's --gpus-per-task) is kept."""
    from pathlib import Path

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d for d in visible.split(",") if d.strip()] if visible else None
    if ids is not None and len(ids) == per_rank:
        return
    if ids is None:
        # counted without CUDA: once the driver is initialised, CUDA_VISIBLE_DEVICES is no longer read
        gpus = Path("/proc/driver/nvidia/gpus")
        if not gpus.is_dir():
            return  # no NVIDIA GPU here (CPU run)
        ids = [str(i) for i in range(len(list(gpus.iterdir())))]
    mine = ids[world.local_rank * per_rank:(world.local_rank + 1) * per_rank]
    if len(mine) < per_rank:
        raise ReasonkitError(f"rank {world.rank} (local {world.local_rank}) needs {per_rank} GPU(s) but only "
                             f"{len(ids)} are visible on its node for {world.local_size} processes")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)


def relaunch(argv: list[str], *, nproc_per_node: int, nnodes: int, node_rank: int | None,
             rdzv_endpoint: str | None, rdzv_id: str | None) -> None:
    """Run this `reasonkit eval ...` command line under torchrun (the real launcher); a failed launch keeps
    torchrun's exit code."""
    from reasonkit.train.distributed import relaunch_with_torchrun

    rc = relaunch_with_torchrun(argv, nproc_per_node=nproc_per_node or 1, nnodes=nnodes or 1, node_rank=node_rank,
                                rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id)
    if rc != 0:
        err = ReasonkitError(f"torchrun exited with {rc}: a rank failed (the records written so far are kept; run "
                             "the same command again to resume)")
        err.exit_code = rc
        raise err


def check_own_shard(store) -> None:
    """A rank started directly by torchrun/srun reports its own shard: exit 3 when it holds error records."""
    from reasonkit.errors import FinishedWithErrors
    from reasonkit.evaluate.store import _read_records

    if store.write_path.exists():
        errors = [r for r in _read_records(store.write_path) if r.get("status") == "error"]
        if errors:
            raise FinishedWithErrors(f"{store.write_path}: {len(errors)} error record(s) (first: "
                                     f"{errors[0].get('video')}: {errors[0].get('error')})")
