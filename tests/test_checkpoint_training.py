"""Checkpoints at the trainer level: real SFT runs of the tiny model on DeepSpeed (CPU, gloo).

Async saves write the very files a sync save writes; SIGKILL at any moment (mid-step, mid-async-save) loses only
the steps since the newest complete checkpoint and the resumed run continues the same loss curve; a checkpoint
of 2 processes resumes in 1; uploads reach a real S3 server on localhost; per-save exports load; offline wandb
holds the logged losses; no credential from the environment lands in anything the run writes or prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_logging
import test_uploads

from reasonkit.errors import ReasonkitError
from reasonkit.plugins import get_trainer
from reasonkit.train.checkpoint import MARKER, TMP_PREFIX, CheckpointManager, read_marker

pytest.importorskip("deepspeed")

# the real S3 server (moto) and its credentials, shared with the uploader tests
s3_endpoint, aws_env, bucket = test_uploads.s3_endpoint, test_uploads.aws_env, test_uploads.bucket

RECIPE = """
[train]
epoch = 1
max_steps = 5
output_dir = "{out}"
seed = 0
optm_lr = 1e-3
optm_weight_decay = 0.0
param_dtype = "float32"
train_batch_per_replica = 2
log_freq = 1

[train.train_policy]
type = "sft"
dataset.name = "synthphys"
dataset.path = "{data}"
dataset.split = "sft"
mini_batch = 1

[train.ckpt]
save_freq = 1
max_keep = -1
save_mode = "async"
export_safetensors = false

[policy]
model_name_or_path = "{model}"
model_max_length = 2048

[logging]
logger = ["jsonl"]

[frames]
fps = 4
max_frames = 16
min_pixels = 784
max_pixels = 12544
"""


@pytest.fixture(scope="module")
def recipe_file(tiny_model_dir, synth_data_dir):
    """Writes the recipe for an output folder (next to it); every run below is this recipe plus overrides."""

    def write(out: Path) -> Path:
        path = out.with_name(f"{out.name}.toml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(RECIPE.format(out=out, data=synth_data_dir, model=tiny_model_dir))
        return path

    return write


def train_in_process(recipe: Path, *overrides: str):
    from reasonkit.train.recipe import load_recipe

    return get_trainer("sft")(load_recipe(recipe, list(overrides)))


def losses(out: Path) -> dict[int, float]:
    """Loss per step; a resumed run appends to the same file, so the last record of a step wins."""
    records = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records}


def complete(out: Path) -> list[Path]:
    return CheckpointManager(out / "checkpoints", save_freq=1).checkpoints()


@pytest.fixture(scope="module")
def reference(recipe_file, tmp_path_factory):
    """An uninterrupted 5-step run saving asynchronously after every step."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train_in_process(recipe_file(out))
    assert sorted(losses(out)) == [1, 2, 3, 4, 5]
    return out


def test_async_checkpoints_are_the_files_a_sync_save_writes(reference, recipe_file, tmp_path):
    out = tmp_path / "sync"
    train_in_process(recipe_file(out), "train.ckpt.save_mode=sync", "train.max_steps=2")
    for step in (1, 2):
        sync, background = out / "checkpoints" / f"step_00000{step}", reference / "checkpoints" / f"step_00000{step}"
        names = sorted(str(p.relative_to(sync)) for p in sync.rglob("*") if p.is_file())
        assert names == sorted(str(p.relative_to(background)) for p in background.rglob("*") if p.is_file())
        assert "state/zero_pp_rank_0_mp_rank_00_optim_states.pt" in names
        for name in names:
            if name != MARKER:  # the marker holds the save time
                assert (sync / name).read_bytes() == (background / name).read_bytes(), (step, name)
        # written while the next step ran, yet it holds the state of its own step
        assert read_marker(sync)["meta"] == read_marker(background)["meta"]
    assert losses(out) == {s: loss for s, loss in losses(reference).items() if s <= 2}


# ---- SIGKILL and resume -----------------------------------------------------------------------------------------

def clean_env() -> dict[str, str]:
    """This environment minus the process-group variables an in-process run set (a child would reuse the port)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}


def start(recipe: Path, log: Path, *sets: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "reasonkit", "train", "sft", "--config", str(recipe)]
    for item in sets:
        cmd += ["--set", item]
    return subprocess.Popen(cmd, stdout=open(log.with_suffix(".out"), "w"), stderr=open(log, "w"),  # noqa: SIM115
                            env=clean_env())


def kill_when(proc: subprocess.Popen, condition, timeout: float = 300) -> bool:
    """SIGKILL ``proc`` as soon as ``condition()`` holds (polled every millisecond); False if it ended first."""
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if condition():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.001)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def leftovers(out: Path) -> list[Path]:
    """Checkpoint folders a crash left: under the temporary name, or renamed but without the marker."""
    root = out / "checkpoints"
    return [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX) or not (p / MARKER).exists()] \
        if root.is_dir() else []


def resumed_from(log: Path) -> Path:
    (line,) = re.findall(r"resumed from (\S+) \(step", log.read_text())
    return Path(line)


@pytest.mark.slow
def test_sigkill_mid_step_and_mid_async_save_then_resume_continues_the_same_curve(reference, recipe_file,
                                                                                  tmp_path):
    out = tmp_path / "killed"
    recipe = recipe_file(out)
    newest = lambda: complete(out)[-1].name if complete(out) else None  # noqa: E731

    # 1. between saves: step 2 is safely on disk and no save is running -> the kill lands in step 3's compute
    proc = start(recipe, tmp_path / "run1.log")
    assert kill_when(proc, lambda: newest() == "step_000002" and not leftovers(out)), "run ended before the kill"

    # 2. during an async save: a checkpoint is being written under its temporary name. Writing 13 MB takes a few
    # milliseconds, so a kill can land just after the rename; retry until one leaves an incomplete checkpoint.
    caught, runs = False, 1
    while not caught and runs < 6:
        runs += 1
        before = complete(out)[-1]
        proc = start(recipe, tmp_path / f"run{runs}.log", "train.resume=true")
        writing = lambda: any(p.name.startswith(TMP_PREFIX) for p in (out / "checkpoints").iterdir())  # noqa: E731
        if not kill_when(proc, writing):
            break  # finished the run without a kill landing: checked below
        assert resumed_from(tmp_path / f"run{runs}.log") == before  # the newest complete one, never a leftover
        caught = bool(leftovers(out))
        assert all(p not in complete(out) for p in leftovers(out))  # what resume scans never lists a leftover
    assert caught, "no kill landed during an async save"

    # 3. resume to the end
    runs += 1
    before = complete(out)[-1]
    log = tmp_path / f"run{runs}.log"
    proc = start(recipe, log, "train.resume=true")
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert resumed_from(log) == before and (before / MARKER).exists()
    assert not leftovers(out)  # the interrupted save was redone under the same name; nothing half-written remains
    assert [p.name for p in complete(out)] == [f"step_00000{s}" for s in range(1, 6)]

    expected, got = losses(reference), losses(out)
    assert sorted(got) == [1, 2, 3, 4, 5]
    for step in expected:
        assert got[step] == pytest.approx(expected[step], abs=1e-5), (step, expected, got)
    # the closing summary says how to resume, with the real recipe path
    resume_line = shlex.join(["reasonkit", "train", "sft", "--config", str(recipe.resolve()), "--set",
                              "train.resume=true"])
    assert f"resume:       {resume_line}" in log.read_text()


# ---- a different number of processes ----------------------------------------------------------------------------

@pytest.mark.slow
def test_checkpoint_of_two_processes_resumes_in_one(recipe_file, tmp_path):
    two = tmp_path / "two"
    recipe = recipe_file(two)
    # ZeRO-2 over 2 processes, 2 samples each (global batch 4); async is single-writer, so this saves sync
    cmd = [sys.executable, "-m", "reasonkit", "train", "sft", "--config", str(recipe), "--nproc-per-node", "2",
           "--set", "train.max_steps=3", "--set", "train.ckpt.save_freq=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("saving synchronously with 2 processes") == 1
    assert "--set train.resume=true --nproc-per-node 2" in proc.stderr  # the resume command keeps the world
    checkpoint = two / "checkpoints" / "step_000002"
    assert read_marker(checkpoint)["meta"]["world_size"] == 2

    # One process must keep the global batch: 4 per process. With 2 per process it is refused before loading.
    one = tmp_path / "one"
    with pytest.raises(ReasonkitError, match="global batch must stay the same.*train_batch_per_replica = 4"):
        train_in_process(recipe, f"train.output_dir={one}", f"train.resume={checkpoint}", "train.max_steps=3")
    assert not (checkpoint / "state_universal").exists()

    train_in_process(recipe, f"train.output_dir={one}", f"train.resume={checkpoint}", "train.max_steps=3",
                     "train.train_batch_per_replica=4")
    assert (checkpoint / "state_universal" / "zero").is_dir()  # ZeRO-2 partitions: loaded as universal
    # Step 3 sees the same 4 samples and the same optimizer state in both runs. Only the order of the float32
    # gradient sums differs (all-reduce of two halves vs one sum of four), a last-bits effect; a lost optimizer
    # state or a shifted data position moves the loss by far more than the tolerance.
    assert sorted(losses(one)) == [3]
    assert losses(one)[3] == pytest.approx(losses(two)[3], abs=1e-5)


def test_resharding_rules_per_zero_stage_and_optimizer(tmp_path):
    from types import SimpleNamespace

    from deepspeed.runtime.bf16_optimizer import BF16_Optimizer

    from reasonkit.train.ds_checkpoint import check_reshard

    def engine(stage, optimizer=None, moe=False):
        return SimpleNamespace(zero_optimization_stage=lambda: stage, optimizer=optimizer, has_moe_layers=moe,
                               zero_nvme_offload_optimizer=lambda: False)

    args = dict(saved_batch=2, position=4, checkpoint=tmp_path)
    assert check_reshard(engine(2), saved_world=2, world=2, batch=2, **args) is False  # same world: as saved
    assert check_reshard(engine(0), saved_world=2, world=1, batch=4, **args) is False  # whole optimizer state
    for stage in (1, 2, 3):
        assert check_reshard(engine(stage), saved_world=2, world=4, batch=1, **args) is True  # universal
    with pytest.raises(ReasonkitError, match="bf16 and ZeRO stage 0"):
        check_reshard(engine(0, BF16_Optimizer.__new__(BF16_Optimizer)), saved_world=2, world=1, batch=4, **args)
    with pytest.raises(ReasonkitError, match="MoE"):
        check_reshard(engine(2, moe=True), saved_world=2, world=1, batch=4, **args)
    with pytest.raises(ReasonkitError, match="does not split evenly"):
        check_reshard(engine(2), saved_world=1, world=2, batch=1, saved_batch=2, position=3, checkpoint=tmp_path)


# ---- uploads, exports, logging and secrets ----------------------------------------------------------------------

FAKE_SECRETS = {"HF_TOKEN": "hf_FakeTokenForCheckpointTests0123456789",
                "AWS_SECRET_ACCESS_KEY": test_uploads.SECRET_KEY,
                "WANDB_API_KEY": "feedfacefeedfacefeedfacefeedfacefeedface"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_uploads_exports_wandb_and_no_secret_anywhere(recipe_file, bucket, monkeypatch, capfd, tmp_path):
    from transformers import AutoModelForImageTextToText

    from reasonkit.backends.loading import check_model_dir

    for var, value in FAKE_SECRETS.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("WANDB_MODE", "offline")  # a WANDB_API_KEY alone would mean online
    out = tmp_path / "run"
    exported = train_in_process(
        recipe_file(out), "train.max_steps=2", "train.ckpt.upload_s3=all", f"train.ckpt.s3_bucket={bucket}",
        "train.ckpt.s3_prefix=team/run1", "train.ckpt.export_safetensors=each",
        "logging.logger=[console, wandb, jsonl]", "logging.experiment_name=ckpt-test")
    stdout, stderr = capfd.readouterr()

    # S3: every complete checkpoint and the final export, file for file
    expected = {}
    for folder, prefix in [*((c, f"team/run1/checkpoints/{c.name}") for c in complete(out)),
                           (out / "final", "team/run1/final")]:
        for path in (p for p in folder.rglob("*") if p.is_file()):
            expected[f"{prefix}/{path.relative_to(folder).as_posix()}"] = (path.stat().st_size, sha256(path))
    assert [c.name for c in complete(out)] == ["step_000001", "step_000002"]
    stored = test_uploads.s3_objects(bucket, "team/run1/")
    assert {key: (obj["size"], obj["sha256"]) for key, obj in stored.items()} == expected
    assert "team/run1/checkpoints/step_000002/complete.json" in stored
    assert f"uploaded:     s3://{bucket}/team/run1/final" in stderr and "UPLOAD FAILED" not in stderr

    # an HF folder per save, loadable as `reasonkit eval --model <folder>` loads it
    assert exported == out / "final"
    for name in ("step_000001", "step_000002"):
        folder = out / "exports" / name
        assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
        check_model_dir(str(folder))
        AutoModelForImageTextToText.from_pretrained(folder)

    # offline wandb: the run file holds the logged losses
    (run_file,) = (out / "logs").glob("wandb/offline-run-*/run-*.wandb")
    history = {}
    for record in test_logging.wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            row = test_logging._items(record.history.item)
            history[row["_step"]] = row["loss"]
    assert history == pytest.approx(losses(out), abs=1e-12) and len(history) == 2
    assert re.search(r"step 2 \| loss \d", stdout)  # the console logger

    # no credential in any file the run wrote (recipe.json, logs, wandb run, checkpoints, exports) or printed
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "recipe.json" for p in files) and any(p.suffix == ".wandb" for p in files)
    for var, value in {**FAKE_SECRETS, "AWS_ACCESS_KEY_ID": test_uploads.ACCESS_KEY}.items():
        assert value not in stdout and value not in stderr, var
        for path in files:
            assert value.encode() not in path.read_bytes(), f"{var} leaked into {path}"


def test_upload_failure_is_reported_after_training_is_saved_and_exits_4(recipe_file, aws_env, monkeypatch, capfd,
                                                                          tmp_path):
    import reasonkit.storage.retry
    from reasonkit import cli

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{test_uploads.free_port()}")  # nothing listens
    monkeypatch.setattr(reasonkit.storage.retry, "MAX_DELAY_S", 0.0)  # retries without the backoff waits
    out = tmp_path / "run"
    code = cli.main(["train", "sft", "--config", str(recipe_file(out)), "--set", "train.max_steps=1",
                     "--set", "train.ckpt.upload_s3=all", "--set", "train.ckpt.s3_bucket=nowhere",
                     "--set", "train.ckpt.export_safetensors=final"])
    stderr = capfd.readouterr().err
    assert code == 4 and stderr.strip().splitlines()[-1].startswith("error: 2 upload(s) failed")
    exported = out / "final"
    assert (exported / "config.json").is_file() and list(exported.glob("*.safetensors"))
    assert [c.name for c in complete(out)] == ["step_000001"]
    failed = [line for line in stderr.splitlines() if line.startswith("  UPLOAD FAILED")]
    assert len(failed) == 2  # the checkpoint and the final export, each after its retries
    assert any("step_000001" in line for line in failed) and any("final" in line for line in failed)
