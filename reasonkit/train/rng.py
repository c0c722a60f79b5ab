"""Save and restore the random-number state (python, numpy, torch CPU and CUDA) inside a checkpoint folder.

Nothing is pickled: python/numpy states go to JSON, torch states to a file of plain tensors read back with
``torch.load(weights_only=True)``, so loading a checkpoint from elsewhere cannot execute code.
One pair of files per rank: ranks draw different random streams.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _paths(checkpoint: Path, rank: int) -> tuple[Path, Path]:
    return Path(checkpoint) / f"rng_state_rank{rank}.json", Path(checkpoint) / f"rng_state_rank{rank}.pt"


def save_rng_state(checkpoint: Path, *, rank: int = 0) -> None:
    import torch

    json_path, torch_path = _paths(checkpoint, rank)
    version, mt_state, gauss_next = random.getstate()
    algorithm, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(mt_state), "gauss_next": gauss_next},
        "numpy": {"algorithm": algorithm, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
    }
    json_path.write_text(json.dumps(state))
    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(tensors, torch_path)


def restore_rng_state(checkpoint: Path, *, rank: int = 0) -> bool:
    """Restore the state saved by :func:`save_rng_state`; False (with a warning) if the checkpoint has none."""
    import torch

    json_path, torch_path = _paths(checkpoint, rank)
    if not (json_path.exists() and torch_path.exists()):
        log.warning("no RNG state for rank %d in %s; random streams restart from the seed", rank, checkpoint)
        return False
    state = json.loads(json_path.read_text())
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state((npy["algorithm"], np.array(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    tensors = torch.load(torch_path, weights_only=True)
    torch.set_rng_state(tensors["cpu"])
    if "cuda" in tensors and torch.cuda.is_available():
        if len(tensors["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(tensors["cuda"])
        else:
            log.warning("checkpoint has CUDA RNG state for %d devices, this machine has %d; not restored",
                        len(tensors["cuda"]), torch.cuda.device_count())
    return True
