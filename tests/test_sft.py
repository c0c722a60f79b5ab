"""SFT on real DeepSpeed (CPU, gloo): ZeRO-2/3 with one and two processes through torchrun, export that eval
loads, over-long handling, freezing, LoRA, and recipe errors that stop before any compute."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasonkit import cli
from reasonkit.plugins import get_dataset, get_trainer

RECIPE = """
[train]
epoch = 1
max_steps = {max_steps}
output_dir = "{out}"
seed = 0
optm_lr = 1e-3
optm_weight_decay = 0.0
param_dtype = "float32"
train_batch_per_replica = {batch}
log_freq = 1

[train.deepspeed]
zero_stage = {stage}

[train.train_policy]
type = "sft"
dataset.name = "synthphys"
dataset.path = "{data}"
dataset.split = "sft"
mini_batch = 1

[train.ckpt]
save_freq = 100
max_keep = 1

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


def write_recipe(path: Path, **kw) -> Path:
    values = {"max_steps": 1, "batch": 4, "stage": 2, **kw}
    path.write_text(RECIPE.format(**values))
    return path


def logged(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]


def run_train(recipe: Path, *extra: str, nproc: int = 1) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "reasonkit", "train", "sft", "--config", str(recipe), *extra]
    if nproc > 1:
        cmd += ["--nproc-per-node", str(nproc)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_zero2_zero3_one_and_two_processes_agree_on_first_loss(tiny_model_dir, synth_data_dir, tmp_path):
    losses = {}
    for stage in (2, 3):
        for nproc in (1, 2):
            out = tmp_path / f"z{stage}-w{nproc}"
            # same global batch of 4 samples: 4 micro-batches on one process, 2 per process on two
            recipe = write_recipe(tmp_path / f"r{stage}{nproc}.toml", out=out, data=synth_data_dir,
                                  model=tiny_model_dir, stage=stage, batch=4 // nproc)
            proc = run_train(recipe, nproc=nproc)
            assert proc.returncode == 0, proc.stderr[-3000:]
            losses[(stage, nproc)] = logged(out)[0]["loss"]
    values = list(losses.values())
    assert max(values) - min(values) < 1e-4, losses


@pytest.fixture(scope="module")
def trained(tiny_model_dir, synth_data_dir, tmp_path_factory):
    """A short single-process run (3 steps) in-process through the trainer plugin."""
    from reasonkit.train.recipe import load_recipe

    tmp = tmp_path_factory.mktemp("sft")
    out = tmp / "run"
    recipe = load_recipe(write_recipe(tmp / "r.toml", out=out, data=synth_data_dir, model=tiny_model_dir,
                                      max_steps=3, batch=2), ["train.ckpt.save_freq=2"])
    exported = get_trainer("sft")(recipe)
    return out, exported


def test_training_writes_checkpoints_logs_and_an_export_eval_loads(trained, synth_data_dir, tmp_path):
    out, exported = trained
    records = logged(out)
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(r["loss"] > 0 and r["tokens_per_s"] > 0 for r in records)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000003"]  # max_keep = 1
    assert (out / "checkpoints" / "step_000003" / "complete.json").exists()
    assert exported == out / "final"
    names = {p.name for p in exported.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "processor_config.json", "chat_template.jinja"} <= names
    assert cli.main(["eval", "synthphys", "--model", str(exported), "--data-dir", str(synth_data_dir),
                     "--results-dir", str(tmp_path / "r"), "--limit", "2", "--set", "generation.max_tokens=4"]) == 0


def test_export_shards_large_models(trained, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from reasonkit.train.engine import export_hf

    out, exported = trained
    model = AutoModelForImageTextToText.from_pretrained(exported)
    from transformers import AutoProcessor

    class Engine:  # export_hf reads the module and ZeRO stage off a DeepSpeed engine; stage 0 here
        module = model

        @staticmethod
        def zero_optimization_stage():
            return 0

    dest = export_hf(Engine, AutoProcessor.from_pretrained(exported), tmp_path / "sharded", is_main=True,
                     max_shard_size="1MB")
    index = json.loads((dest / "model.safetensors.index.json").read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 1
    reloaded = AutoModelForImageTextToText.from_pretrained(dest)
    original = load_file(exported / "model.safetensors")
    for name, tensor in reloaded.state_dict().items():
        if name in original:
            assert (tensor == original[name]).all(), name


def test_resume_continues_the_same_loss_curve(tiny_model_dir, synth_data_dir, tmp_path):
    from reasonkit.train.recipe import load_recipe

    full = tmp_path / "full"
    get_trainer("sft")(load_recipe(write_recipe(tmp_path / "a.toml", out=full, data=synth_data_dir,
                                                model=tiny_model_dir, max_steps=4, batch=2)))
    part = tmp_path / "part"
    recipe = write_recipe(tmp_path / "b.toml", out=part, data=synth_data_dir, model=tiny_model_dir, max_steps=2,
                          batch=2)
    get_trainer("sft")(load_recipe(recipe))
    get_trainer("sft")(load_recipe(recipe, ["train.max_steps=4", "train.resume=true"]))
    a = {r["step"]: r["loss"] for r in logged(full)}
    b = {r["step"]: r["loss"] for r in logged(part)}
    assert sorted(b) == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert b[step] == pytest.approx(a[step], abs=1e-5), (step, a, b)


def test_overlong_samples_are_counted_not_silently_dropped(tiny_model_dir, synth_data_dir, tmp_path):
    from reasonkit.train.recipe import load_recipe

    out = tmp_path / "drop"
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", out=out, data=synth_data_dir, model=tiny_model_dir,
                                      max_steps=1, batch=2), ["policy.model_max_length=40"])
    get_trainer("sft")(recipe)
    assert logged(out)[-1]["dropped_overlong"] == 2
    out = tmp_path / "trunc"
    recipe = load_recipe(write_recipe(tmp_path / "t.toml", out=out, data=synth_data_dir, model=tiny_model_dir,
                                      max_steps=1, batch=2),
                         ["policy.model_max_length=170", "train.train_policy.overlong=truncate"])
    get_trainer("sft")(recipe)
    last = logged(out)[-1]
    assert (last["truncated"], last["dropped_overlong"]) == (2, 0)  # prompts ~150 tokens, answers cut short


def test_freeze_pattern_keeps_the_vision_tower_fixed(tiny_model_dir, synth_data_dir, tmp_path):
    from safetensors.torch import load_file

    from reasonkit.train.recipe import load_recipe

    out = tmp_path / "frozen"
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", out=out, data=synth_data_dir, model=tiny_model_dir,
                                      max_steps=2, batch=2), ["policy.freeze_pattern=['^model\\.visual\\.']"])
    exported = get_trainer("sft")(recipe)
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(exported / "model.safetensors")
    visual = [k for k in before if k.startswith("visual.")]  # saved names (in memory: model.visual.*)
    text = [k for k in before if k.startswith("model.layers.")]
    assert visual and all((before[k] == after[k]).all() for k in visual)
    assert any(not (before[k] == after[k]).all() for k in text)


def test_lora_exports_merged_plain_weights(tiny_model_dir, synth_data_dir, tmp_path):
    from safetensors.torch import load_file

    from reasonkit.train.recipe import load_recipe

    out = tmp_path / "lora"
    recipe = load_recipe(write_recipe(tmp_path / "r.toml", out=out, data=synth_data_dir, model=tiny_model_dir,
                                      max_steps=2, batch=2),
                         ["policy.lora={r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj]}",
                          "train.optm_lr=0.05"])
    exported = get_trainer("sft")(recipe)
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(exported / "model.safetensors")
    assert set(after) == set(before)  # no lora_A/lora_B keys: merged
    changed = [k for k in before if not (before[k] == after[k]).all()]
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)


def test_dataset_plugin_rows(synth_data_dir):
    rows = get_dataset("synthphys")(str(synth_data_dir), split="sft")
    assert len(rows) == 40 and rows[0]["video"].is_file()
    assert rows[0]["conversations"][-1]["content"].endswith("</answer>")
    rl = get_dataset("synthphys")(str(synth_data_dir), split="rl")
    assert len(rl) == 40 and set(rl[0]["qa"]) >= {"question", "index2ans", "answer"}


def test_bad_recipes_fail_before_any_compute(tiny_model_dir, synth_data_dir, tmp_path):
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    good = dict(out=tmp_path / "o", data=synth_data_dir, model=tiny_model_dir)
    cases = [
        (RECIPE.format(max_steps=1, batch=4, stage=2, **good).replace("optm_lr", "optm_lrr"),
         "unknown key 'train.optm_lrr' — did you mean 'optm_lr'?"),
        (RECIPE.format(max_steps=1, batch=4, stage=2, **{**good, "data": tmp_path / "nowhere"}),
         "synthphys_sft.json: not found"),
        (RECIPE.format(max_steps=1, batch=4, stage=2, **{**good, "model": no_weights}), "has no weights"),
        (RECIPE.format(max_steps=1, batch=3, stage=2, **good).replace("mini_batch = 1", "mini_batch = 2"),
         "train_batch_per_replica (3) must be divisible by train.train_policy.mini_batch (2)"),
        (RECIPE.format(max_steps=1, batch=4, stage=7, **good), "key 'train.deepspeed.zero_stage'"),
    ]
    for i, (text, message) in enumerate(cases):
        recipe = tmp_path / f"bad{i}.toml"
        recipe.write_text(text)
        start = time.time()
        proc = run_train(recipe)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = proc.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and message in lines[-1], proc.stderr[-2000:]
        assert not (tmp_path / "o" / "logs").exists()  # nothing ran
        assert time.time() - start < 60


def test_split_step_groups_by_length_without_changing_the_step_rows():
    import torch

    from reasonkit.train.data import split_step

    lengths = [5, 40, 7, 38, None, 6, 41, 39]  # None: a sample dropped as over-long
    encoded = [None if n is None else {"input_ids": torch.zeros(1, n), "row": i} for i, n in enumerate(lengths)]

    def padded(micro):
        return sum(max(e["input_ids"].shape[1] for e in m) * len(m) for m in micro if m)

    plain = split_step(encoded, 4, by_length=False)
    grouped = split_step(encoded, 4, by_length=True)
    assert [[e["row"] for e in m] for m in plain] == [[0, 1], [2, 3], [5], [6, 7]]  # order kept, drop counted
    assert len(grouped) == 4 and all(len(m) <= 2 for m in grouped)
    assert sorted(e["row"] for m in grouped for e in m) == sorted(e["row"] for m in plain for e in m)
    assert padded(plain) == 40 * 2 + 38 * 2 + 6 + 41 * 2 and padded(grouped) == 41 * 2 + 39 * 2 + 7 * 2 + 5
    assert split_step([None, None], 2, by_length=True) == [[], []]  # the trainer steps with zero weight


def test_group_by_length_trains_on_less_padding(tiny_model_dir, synth_data_dir, tmp_path):
    from reasonkit.train.recipe import load_recipe

    padding = {}
    for grouped in (False, True):
        out = tmp_path / f"grouped-{grouped}"
        recipe = load_recipe(write_recipe(tmp_path / f"{grouped}.toml", out=out, data=synth_data_dir,
                                          model=tiny_model_dir, max_steps=3, batch=4),
                             ["train.train_policy.mini_batch=2", f"train.train_policy.group_by_length={grouped}"])
        get_trainer("sft")(recipe)
        padding[grouped] = [r["padding"] for r in logged(out)]
        assert all(r["loss"] == r["loss"] for r in logged(out))  # finite, not NaN
    assert len(padding[True]) == len(padding[False]) == 3
    assert all(g <= p for g, p in zip(padding[True], padding[False]))
    assert sum(padding[True]) < sum(padding[False])


def test_gradient_checkpointing_every_nth_layer_keeps_the_gradients(tiny_model_dir):
    import torch
    from transformers import AutoModelForImageTextToText

    from reasonkit.train.engine import checkpoint_every

    grads = {}
    for every in (1, 2):
        torch.manual_seed(0)
        model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).train()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        layers = len(model.model.language_model.layers) + len(model.model.visual.blocks)
        kept = checkpoint_every(model, every)
        assert kept == (layers if every == 1 else sum(
            (len(stack) + 1) // 2 for stack in (model.model.language_model.layers, model.model.visual.blocks)))
        ids = torch.arange(3, 40).unsqueeze(0)
        model(input_ids=ids, labels=ids).loss.backward()
        grads[every] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads[1].keys() == grads[2].keys()
    for name in grads[1]:
        assert torch.allclose(grads[1][name], grads[2][name], atol=1e-6), name
