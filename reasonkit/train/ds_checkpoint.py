"""DeepSpeed state in a RunContext checkpoint: the synchronous save, an asynchronous one, and loading a
checkpoint written by a different number of processes.

Async: DeepSpeed's own ``save_checkpoint`` runs with its checkpoint engine swapped for one that keeps a CPU copy
of each state dict instead of writing it. That copy is the snapshot; a background thread later hands the same
dicts to the real engine's ``save``, so the files are the ones a synchronous save writes and resume is unchanged.

Different number of processes: ZeRO stage 0 keeps the whole optimizer state in one file and loads as is. ZeRO 1-3
partition it per rank, and DeepSpeed 0.19 refuses another data-parallel size; such a checkpoint is converted
once to a DeepSpeed universal checkpoint (``<ckpt>/state_universal``) and loaded with universal loading. The
cases neither covers (bf16 without ZeRO, MoE, NVMe offload, a changed global batch) are refused before loading.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from reasonkit.errors import ReasonkitError
from reasonkit.train.checkpoint import WriteFn

STATE_TAG = "state"
UNIVERSAL_TAG = "state_universal"


def save_sync(engine, folder: Path, client: dict[str, Any], rank: int) -> None:
    """DeepSpeed state (model, optimizer, scheduler, ``client``) + this rank's RNG state into ``folder``."""
    from reasonkit.train.rng import save_rng_state

    engine.save_checkpoint(str(folder), tag=STATE_TAG, client_state=client, save_latest=False)
    save_rng_state(folder, rank=rank)


def can_snapshot(engine) -> bool:
    """True when DeepSpeed writes through the plain torch checkpoint engine (others write elsewhere or in
    their own way), and no NVMe-swapped optimizer state is copied outside it."""
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    return type(engine.checkpoint_engine) is TorchCheckpointEngine and not engine.zero_nvme_offload_optimizer()


def snapshot(engine, client: dict[str, Any], rank: int) -> WriteFn:
    """Copy the state a save would write to CPU memory now; return the function that writes it (in the
    background) into a checkpoint folder. Single process only: the writes happen outside any collective."""
    real = engine.checkpoint_engine
    capture = _capture_engine()
    engine.checkpoint_engine = capture
    try:
        with tempfile.TemporaryDirectory(prefix="reasonkit-snapshot-") as staging:
            save_sync(engine, Path(staging), client, rank)  # only small files land here (RNG, DeepSpeed scripts)
            root = Path(staging)
            dirs = [p.relative_to(root) for p in root.rglob("*") if p.is_dir()]
            files = [(p.relative_to(root), p.read_bytes(), p.stat().st_mode) for p in root.rglob("*") if p.is_file()]
            captured = [(Path(path).relative_to(root), state) for path, state in capture.saved]
    finally:
        engine.checkpoint_engine = real

    def write(folder: Path) -> None:
        for rel in dirs:
            (folder / rel).mkdir(parents=True, exist_ok=True)
        for rel, data, mode in files:
            (folder / rel).write_bytes(data)
            os.chmod(folder / rel, mode)
        while captured:  # popped, so each copy is freed as soon as it is on disk
            rel, state = captured.pop(0)
            real.save(state, str(folder / rel))

    return write


def _capture_engine():
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    class CaptureEngine(TorchCheckpointEngine):
        """Records (path, CPU copy) for each file DeepSpeed asks it to save, writing nothing."""

        def __init__(self):  # not super(): it only reads the serialization flag, which the real engine applies
            self.name = "ReasonkitCaptureEngine"
            self.saved: list[tuple[str, Any]] = []

        def save(self, state_dict, path: str) -> None:
            self.saved.append((path, cpu_copy(state_dict)))

    return CaptureEngine()


def cpu_copy(obj: Any, memo: dict | None = None) -> Any:
    """A deep copy with every tensor in CPU memory. Tensors that shared a storage (ZeRO's views of one flat
    buffer) share one in the copy, so torch.save writes the same storages it would have for the original."""
    import torch

    memo = {} if memo is None else memo
    if isinstance(obj, torch.Tensor):
        storage = obj.untyped_storage()
        key = ("storage", storage._cdata)  # what torch.save itself dedupes storages by
        if key not in memo:
            memo[key] = storage.clone() if storage.device.type == "cpu" else storage.cpu()
        out = torch.empty(0, dtype=obj.dtype).set_(memo[key], obj.storage_offset(), obj.size(), obj.stride())
        out = (torch.nn.Parameter(out, requires_grad=obj.requires_grad) if isinstance(obj, torch.nn.Parameter)
               else out.requires_grad_(obj.requires_grad))
        if obj.__dict__:  # python attributes (ZeRO-3 tags flat groups with ds_id): torch.save pickles them too
            out.__dict__.update(cpu_copy(dict(obj.__dict__), memo))
        return out
    if ("object", id(obj)) in memo:  # an object referenced twice stays one object (pickle writes it once)
        return memo["object", id(obj)]
    if isinstance(obj, dict):
        out = copy.copy(obj)  # keeps the dict's type (OrderedDict, ...)
        memo["object", id(obj)] = out
        for key, value in obj.items():
            out[key] = cpu_copy(value, memo)
    elif isinstance(obj, list):
        out = []
        memo["object", id(obj)] = out
        out.extend(cpu_copy(v, memo) for v in obj)
    elif isinstance(obj, tuple):
        items = [cpu_copy(v, memo) for v in obj]
        out = type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    else:  # numbers, strings, configs, loss scalers: small
        out = copy.deepcopy(obj)
    memo["object", id(obj)] = out
    return out


# ---- loading, possibly with a different number of processes ---------------------------------------------------

def check_reshard(engine, *, saved_world: int, world: int, saved_batch: int | None, batch: int, position: int,
                  checkpoint: Path) -> bool:
    """Whether loading ``checkpoint`` (written by ``saved_world`` processes) into this ``world`` needs a
    universal checkpoint. Raises, before anything is loaded, for the cases that cannot continue the run."""
    if saved_world == world:
        return False
    where = f"resume from {checkpoint}: it was saved by {saved_world} processes, this run has {world}"
    if saved_batch is not None and saved_batch * saved_world != batch * world:
        raise ReasonkitError(f"{where}; the global batch must stay the same to continue the run "
                             f"({saved_world} x train_batch_per_replica {saved_batch} = {saved_batch * saved_world}"
                             f"): set train.train_batch_per_replica = {saved_batch * saved_world / world:g}")
    if position * saved_world % world:
        raise ReasonkitError(f"{where}; its data position ({position} per process) does not split evenly "
                             f"over {world} processes")
    if engine.has_moe_layers or engine.zero_nvme_offload_optimizer():
        raise ReasonkitError(f"{where}; DeepSpeed cannot re-partition MoE or NVMe-offloaded optimizer state "
                             "here: resume with the same number of processes")
    stage = engine.zero_optimization_stage()
    if stage == 0:
        from deepspeed.runtime.bf16_optimizer import BF16_Optimizer

        if isinstance(engine.optimizer, BF16_Optimizer):
            # bf16 without ZeRO still splits fp32 master weights per rank, and DeepSpeed only loads those
            # re-partitioned (universal) under ZeRO >= 1.
            raise ReasonkitError(f"{where}; with bf16 and ZeRO stage 0 DeepSpeed cannot re-partition the "
                                 "optimizer state: resume with the same number of processes, or use zero_stage >= 1")
        return False  # whole optimizer state in one file: loads at any world size
    return True


def to_universal(checkpoint: Path) -> Path:
    """Convert ``checkpoint/state`` to ``checkpoint/state_universal`` (once; crash-safe: written under a
    temporary name, then renamed)."""
    import contextlib
    import shutil
    from argparse import Namespace

    from deepspeed.checkpoint import ds_to_universal

    final = checkpoint / UNIVERSAL_TAG
    if final.is_dir():
        return final
    tmp = checkpoint / f".tmp-{UNIVERSAL_TAG}"
    shutil.rmtree(tmp, ignore_errors=True)
    args = Namespace(input_folder=str(checkpoint / STATE_TAG), output_folder=str(tmp), keep_temp_folder=False,
                     num_extract_workers=1, num_merge_workers=1,  # >1 forks workers: not worth it per resume
                     strict=True, inject_missing_state=True)  # our (non-Megatron) models carry no UC info
    print(f"converting {checkpoint} to a DeepSpeed universal checkpoint (different number of processes)",
          file=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):  # its progress output must not mix with training's stdout
        ds_to_universal.main(args)
    (checkpoint / "latest_universal").unlink(missing_ok=True)  # written by the converter; we pass the tag
    os.rename(tmp, final)
    return final


def load(engine, checkpoint: Path, *, universal: bool) -> dict[str, Any]:
    """engine.load_checkpoint (model, optimizer, scheduler) of a RunContext checkpoint; returns the client state."""
    kwargs = dict(load_optimizer_states=True, load_lr_scheduler_states=True)
    if not universal:
        return engine.load_checkpoint(str(checkpoint), tag=STATE_TAG, **kwargs)[1]
    # DeepSpeed 0.19 reads `checkpoint.load_universal` only inside load_checkpoint, so it is switched on for
    # this one load rather than rebuilding the engine with it.
    config, before = engine._config, engine._config.load_universal_checkpoint
    config.load_universal_checkpoint = True
    try:
        return engine.load_checkpoint(str(checkpoint), tag=UNIVERSAL_TAG, **kwargs)[1]
    finally:
        config.load_universal_checkpoint = before
