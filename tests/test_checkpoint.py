"""Checkpoint lifecycle on a real file system, including processes killed with SIGKILL in the middle of a save."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from reasonkit.errors import ConfigError, ReasonkitError
from reasonkit.train.checkpoint import MARKER, CheckpointManager, CheckpointSaveError, is_complete, read_marker

REPO = Path(__file__).resolve().parents[1]


def writer(content: bytes):
    def write(folder: Path) -> None:
        (folder / "model.bin").write_bytes(content)
        (folder / "sub").mkdir()
        (folder / "sub" / "optim.bin").write_bytes(content[::-1])

    return write


def fail_disk_full(folder: Path) -> None:
    raise OSError("disk full")


def steps(manager: CheckpointManager) -> list[int]:
    return [read_marker(path)["step"] for path in manager.checkpoints()]


def test_should_save_every_save_freq_steps(tmp_path):
    manager = CheckpointManager(tmp_path, save_freq=5)
    assert [s for s in range(0, 16) if manager.should_save(s)] == [5, 10, 15]
    assert not CheckpointManager(tmp_path, save_freq=0).should_save(5)


def test_invalid_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="max_keep"):
        CheckpointManager(tmp_path, save_freq=1, max_keep=0)
    with pytest.raises(ConfigError, match="save_mode"):
        CheckpointManager(tmp_path, save_freq=1, save_mode="later")


def test_save_writes_to_temp_then_renames_then_marks_complete(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", save_freq=10)
    seen = {}

    def write(folder: Path) -> None:
        # While the files are written, only the temporary folder exists, and it is not complete.
        seen["folder"] = folder.name
        seen["final_exists"] = (tmp_path / "ckpt" / "step_000010").exists()
        writer(b"weights")(folder)

    final = manager.save(10, write, meta={"epoch": 1, "hf_token": "hf_should_not_be_saved_0123456789abcdef"})
    assert seen == {"folder": ".tmp-step_000010", "final_exists": False}
    assert final == tmp_path / "ckpt" / "step_000010"
    assert (final / "model.bin").read_bytes() == b"weights"
    assert (final / "sub" / "optim.bin").read_bytes() == b"sthgiew"
    marker = json.loads((final / MARKER).read_text())
    assert marker["step"] == 10 and marker["meta"]["epoch"] == 1 and marker["time"] > 0
    assert marker["meta"]["hf_token"] == "***"  # meta is redacted like every saved config
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step_000010"]  # no temporary left
    assert manager.latest() == final


def test_resave_of_same_step_replaces_it(tmp_path):
    manager = CheckpointManager(tmp_path, save_freq=1)
    manager.save(3, writer(b"old"))
    manager.save(3, writer(b"new"))
    assert (manager.latest() / "model.bin").read_bytes() == b"new"
    assert steps(manager) == [3]


def test_max_keep_counts_complete_only_and_keeps_newest(tmp_path):
    manager = CheckpointManager(tmp_path, save_freq=1, max_keep=2)
    for step in (1, 2):
        manager.save(step, writer(b"x"))
    # Crash leftovers newer than everything complete: an unmarked renamed folder and a temporary one.
    (tmp_path / "step_000004").mkdir()
    (tmp_path / ".tmp-step_000005").mkdir()
    assert manager.latest().name == "step_000002"  # leftovers are ignored by resume

    manager.save(3, writer(b"x"))
    assert steps(manager) == [2, 3]  # leftovers did not count towards max_keep
    assert (tmp_path / "step_000004").exists() and (tmp_path / ".tmp-step_000005").exists()  # newer: kept

    manager.save(6, writer(b"x"))
    assert steps(manager) == [3, 6]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000003", "step_000006"]  # older leftovers gone


def test_max_keep_one_never_deletes_newest_complete(tmp_path):
    manager = CheckpointManager(tmp_path, save_freq=1, max_keep=1)
    manager.save(1, writer(b"a"))
    manager.save(2, writer(b"b"))
    assert steps(manager) == [2]
    # A failing save leaves the newest complete checkpoint in place.
    with pytest.raises(OSError):
        manager.save(3, fail_disk_full)
    assert steps(manager) == [2] and manager.latest().name == "step_000002"


def test_max_keep_skips_checkpoints_in_use(tmp_path):
    busy: list[Path] = []
    manager = CheckpointManager(tmp_path, save_freq=1, max_keep=1, in_use=lambda: busy)
    busy.append(manager.save(1, writer(b"a")))  # e.g. still uploading
    manager.save(2, writer(b"b"))
    assert steps(manager) == [1, 2]
    busy.clear()
    manager.save(3, writer(b"c"))
    assert steps(manager) == [3]


def test_on_complete_hook_sees_only_complete_checkpoints(tmp_path):
    seen = []
    manager = CheckpointManager(tmp_path, save_freq=1, save_mode="async",
                                on_complete=lambda path: seen.append((path.name, is_complete(path))))
    manager.save(1, writer(b"a"))
    manager.save(2, writer(b"b"))
    manager.close()
    assert seen == [("step_000001", True), ("step_000002", True)]


def test_resolve(tmp_path):
    manager = CheckpointManager(tmp_path, save_freq=1)
    assert manager.resolve(True) is None  # nothing yet: a fresh start, not an error
    manager.save(1, writer(b"a"))
    manager.save(2, writer(b"b"))
    (tmp_path / "step_000003").mkdir()  # renamed but never marked
    assert manager.resolve(True) == tmp_path / "step_000002"
    assert manager.resolve("latest") == tmp_path / "step_000002"
    assert manager.resolve(False) is None and manager.resolve(None) is None
    assert manager.resolve(tmp_path / "step_000001") == tmp_path / "step_000001"
    assert manager.resolve("step_000001") == tmp_path / "step_000001"  # a name under root
    with pytest.raises(ReasonkitError, match="incomplete.*step_000001, step_000002"):
        manager.resolve(tmp_path / "step_000003")
    with pytest.raises(ReasonkitError, match="does not exist"):
        manager.resolve(tmp_path / "step_000099")


def test_async_save_snapshots_synchronously_and_writes_in_background(tmp_path):
    manager = CheckpointManager(tmp_path, save_freq=1, save_mode="async")
    state = {"w": b"v1"}
    release = threading.Event()

    def snapshot():
        copied = bytes(state["w"])  # the "copy to CPU" happens now, in the caller's thread

        def write(folder: Path) -> None:
            release.wait(10)
            (folder / "model.bin").write_bytes(copied)

        return write

    final = manager.save(1, snapshot_fn=snapshot)
    state["w"] = b"v2"  # training goes on and changes the live state
    assert manager.latest() is None and not is_complete(final)  # still writing
    release.set()
    manager.wait()
    assert manager.latest() == final and (final / "model.bin").read_bytes() == b"v1"
    manager.close()


def test_async_save_failure_is_raised_at_next_save_and_wait(tmp_path):
    manager = CheckpointManager(tmp_path, save_freq=1, save_mode="async")
    manager.save(1, writer(b"ok"))

    manager.save(2, fail_disk_full)  # returns at once; the failure happens in the background
    with pytest.raises(CheckpointSaveError, match="step 2.*disk full"):
        manager.save(3, writer(b"ok"))
    assert steps(manager) == [1]  # the save that raised did not start

    manager.save(3, fail_disk_full)
    with pytest.raises(CheckpointSaveError, match="step 3"):
        manager.wait()
    manager.wait()  # reported once, not forever
    manager.save(4, writer(b"ok"))
    manager.close()
    assert steps(manager) == [1, 4]
    assert manager.latest().name == "step_000004"


EXIT_CHILD = textwrap.dedent(
    """
    import sys, time
    from reasonkit.train.checkpoint import CheckpointManager

    manager = CheckpointManager(sys.argv[1], save_freq=1, save_mode="async")

    def slow(folder):
        time.sleep(0.5)
        if sys.argv[2] == "fail":
            raise OSError("disk full")
        (folder / "model.bin").write_bytes(b"done")

    manager.save(1, slow)
    # exits without wait()/close()
    """
)


@pytest.mark.parametrize("outcome", ["ok", "fail"])
def test_interpreter_exit_waits_for_async_save_and_reports_failure(tmp_path, outcome):
    script = tmp_path / "child.py"
    script.write_text(EXIT_CHILD)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "ckpt"), outcome], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    manager = CheckpointManager(tmp_path / "ckpt", save_freq=1)
    if outcome == "ok":
        assert done.returncode == 0 and steps(manager) == [1]
    else:
        assert steps(manager) == []
        assert "saving checkpoint step 1" in done.stderr and "disk full" in done.stderr
        assert "interpreter exit" in done.stderr


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import reasonkit.train.checkpoint as ckpt

    root, mode, where = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    manager = ckpt.CheckpointManager(root, save_freq=1, save_mode=mode)

    def small(folder):
        (folder / "model.bin").write_bytes(b"complete")

    for step in (1, 2):
        manager.save(step, small)
        manager.wait()

    def slow(folder):
        with open(folder / "model.bin", "wb") as f:
            print("WRITING", flush=True)
            for _ in range(100000):  # a big file, written slowly: killed long before the end
                f.write(os.urandom(1 << 16))
                f.flush()
                time.sleep(0.005)

    if where == "after-rename":
        def hang(path, data):  # renamed into place, marker not yet written
            print("WRITING", flush=True)
            time.sleep(60)
        ckpt._write_json_durably = hang
        manager.save(3, small)
    elif mode == "async":
        manager.save(3, snapshot_fn=lambda: slow)
        time.sleep(60)  # the main thread trains on while the background thread writes
    else:
        manager.save(3, slow)
    """
)


@pytest.mark.parametrize(("mode", "where"), [("sync", "writing"), ("async", "writing"), ("sync", "after-rename")])
def test_sigkill_during_save_leaves_only_complete_checkpoints(tmp_path, mode, where):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    root = tmp_path / "ckpt"
    child = subprocess.Popen([sys.executable, str(script), str(root), mode, where], stdout=subprocess.PIPE,
                             text=True, cwd=REPO)
    try:
        assert child.stdout.readline().strip() == "WRITING"
        if where == "writing":  # let it get some megabytes in
            partial = root / ".tmp-step_000003" / "model.bin"
            while not partial.exists() or partial.stat().st_size < (1 << 20):
                assert child.poll() is None
                time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()

    leftover = root / (".tmp-step_000003" if where == "writing" else "step_000003")
    assert leftover.is_dir() and not is_complete(leftover)
    manager = CheckpointManager(root, save_freq=1)
    assert steps(manager) == [1, 2]
    assert manager.latest() == root / "step_000002" == manager.resolve(True)
    assert (manager.latest() / "model.bin").read_bytes() == b"complete"
    with pytest.raises(ReasonkitError, match="incomplete"):
        manager.resolve(leftover)
    # The resumed run saves step 3 again: the leftover is replaced by a complete checkpoint.
    manager.save(3, lambda folder: (folder / "model.bin").write_bytes(b"again"))
    assert steps(manager) == [1, 2, 3]
    assert sorted(p.name for p in root.iterdir()) == ["step_000001", "step_000002", "step_000003"]


def test_rng_state_roundtrip_without_pickle(tmp_path):
    import torch

    from reasonkit.train.rng import restore_rng_state, save_rng_state

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # a cached gaussian is part of python's state
    save_rng_state(tmp_path, rank=0)
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3).tolist())

    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    assert restore_rng_state(tmp_path, rank=0)
    assert (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), torch.rand(3).tolist()) == expected

    json.loads((tmp_path / "rng_state_rank0.json").read_text())  # plain JSON
    tensors = torch.load(tmp_path / "rng_state_rank0.pt", weights_only=True)  # plain tensors
    assert set(tensors) >= {"cpu"} and isinstance(tensors["cpu"], torch.Tensor)
    assert not restore_rng_state(tmp_path, rank=1)  # absent: a warning, not a crash
