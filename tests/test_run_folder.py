"""One run per output folder: a fresh run refuses a folder holding another run (or moves it aside when asked),
a resume refuses a changed recipe naming the keys, and the resumed metrics log has every step exactly once."""

from __future__ import annotations

import json

from test_sft import logged, write_recipe

from reasonkit import cli
from reasonkit.config import changed_keys
from reasonkit.train.run_folder import RESUME_SAFE_KEYS


def test_changed_keys_names_what_differs_except_the_safe_keys():
    old = {"train": {"max_steps": 2, "train_batch_per_replica": 4, "ckpt": {"save_freq": 1}}, "logging": {"x": 1}}
    new = {"train": {"max_steps": 9, "train_batch_per_replica": 8, "ckpt": {"save_freq": 5}}, "logging": {"x": 2}}
    assert changed_keys(old, new, safe=RESUME_SAFE_KEYS) == ["train.train_batch_per_replica"]
    assert changed_keys(old, new) == ["logging.x", "train.ckpt.save_freq", "train.max_steps",
                                      "train.train_batch_per_replica"]


def test_uploads_may_change_on_resume():
    old = {"train": {"ckpt": {"upload": []}}}
    new = {"train": {"ckpt": {"upload": [{"name": "s3", "when": "all", "options": {"bucket": "b"}}]}}}
    assert changed_keys(old, new, safe=RESUME_SAFE_KEYS) == []


def test_fresh_run_refuses_a_used_folder_overwrite_moves_it_aside_resume_refuses_a_changed_recipe(
        tiny_model_dir, synth_data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.toml", out=out, data=synth_data_dir, model=tiny_model_dir, max_steps=2,
                          batch=2)
    train = ["train", "sft", "--config", str(recipe), "--set", "train.ckpt.save_freq=1"]
    assert cli.main(train) == 0
    first = (out / "final" / "model.safetensors").read_bytes()
    capsys.readouterr()

    # a fresh run into the same folder: one line, nothing touched
    assert cli.main(train) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "train.resume=true" in err
    assert "train.overwrite=true" in err
    assert (out / "final" / "model.safetensors").read_bytes() == first

    # a resume that changes what is trained: refused, naming the key and both values
    assert cli.main([*train, "--set", "train.resume=true", "--set", "train.train_batch_per_replica=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.train_batch_per_replica (2 -> 4)" in err

    # a resume that only runs longer: accepted, the log continues with no repeated step
    assert cli.main([*train, "--set", "train.resume=true", "--set", "train.max_steps=3"]) == 0
    assert [r["step"] for r in logged(out)] == [1, 2, 3]

    # overwrite: the old run moves aside whole, the new one starts in an empty folder
    assert cli.main([*train, "--set", "train.overwrite=true"]) == 0
    (aside,) = tmp_path.glob("run.replaced-*")
    assert "moved to" in capsys.readouterr().err
    assert [r["step"] for r in logged(aside)] == [1, 2, 3] and [r["step"] for r in logged(out)] == [1, 2]
    assert sorted(p.name for p in (aside / "checkpoints").iterdir()) == ["step_000003"]  # max_keep = 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000002"]
    assert json.loads((out / "recipe.json").read_text())["train"]["max_steps"] == 2
