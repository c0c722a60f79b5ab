"""Training runs report too: `train.eval_freq` evaluates the [eval] benchmark through `reasonkit eval`'s code
(console, metrics.jsonl, wandb offline), and `reasonkit eval --wandb-project` logs an eval's scores."""

from __future__ import annotations

import json

import pytest
from test_logging import _items, wandb_records
from test_sft import write_recipe

from reasonkit import cli
from reasonkit.errors import ConfigError

EVAL = """
[eval]
benchmark = "synthphys"
data_dir = "{data}"
config = "synthphys"
limit = 4
answer_type = "letter"
"""


def recipe_with_eval(tmp_path, model, data, out, *, freq=2, steps=4, logger='["console", "jsonl", "wandb"]'):
    path = write_recipe(tmp_path / "r.toml", out=out, data=data, model=model, max_steps=steps, batch=2)
    text = path.read_text().replace("log_freq = 1", f"log_freq = 1\neval_freq = {freq}")
    text = text.replace('logger = ["jsonl"]', f"logger = {logger}")
    path.write_text(text + EVAL.format(data=data))
    return path


def test_sft_evaluates_every_eval_freq_steps(tiny_model_dir, synth_data_dir, tmp_path, capsys, monkeypatch):
    from reasonkit.plugins import get_trainer
    from reasonkit.train.recipe import load_recipe

    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    get_trainer("sft")(load_recipe(recipe_with_eval(tmp_path, tiny_model_dir, synth_data_dir, out)))
    logged = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    with_eval = [r for r in logged if "eval/synthphys/accuracy" in r]
    assert [r["step"] for r in logged] == [1, 2, 3, 4] and [r["step"] for r in with_eval] == [2, 4]
    assert all(r["eval/synthphys/coverage"] == 100.0 and "loss" in r for r in with_eval)
    # The first 4 synthphys questions are one per type (count, direction, ...): each type's accuracy is 0 or 100.
    types = {k.split("/")[-1] for k in with_eval[0] if k.count("/") == 2} - {"accuracy", "coverage"}
    assert len(types) == 4 and all(with_eval[0][f"eval/synthphys/{t}"] in (0.0, 100.0) for t in types)
    console = capsys.readouterr()
    assert "eval at step 2: synthphys" in console.err and "eval/synthphys/accuracy" in console.out
    # The numbers are `reasonkit score`'s on the stored results: one model per evaluated step.
    assert cli.main(["score", str(out / "eval" / "results"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["model"].split("-")[0] for r in rows) == ["model_step_000002", "model_step_000004"]
    by_step = {int(r["model"].split("_")[2].split("-")[0]): r["accuracy"] for r in rows}
    assert by_step == {2: with_eval[0]["eval/synthphys/accuracy"], 4: with_eval[1]["eval/synthphys/accuracy"]}
    assert not list((out / "eval").glob("model_step_*"))  # exports deleted: keep_models is false
    # `reasonkit compare <run folder>`: each evaluated step against the first.
    assert cli.main(["compare", str(out), "--json"]) == 0
    (step4,) = json.loads(capsys.readouterr().out)
    assert step4["a"].startswith("eval/results/model_step_000002-") and "model_step_000004" in step4["b"]
    assert step4["datasets"][0]["diff"] == pytest.approx(by_step[4] - by_step[2])
    # wandb got the same values at the same steps.
    (run_file,) = (out / "logs" / "wandb").glob("offline-run-*/run-*.wandb")
    history = [_items(r.history.item) for r in wandb_records(run_file) if r.WhichOneof("record_type") == "history"]
    assert [h["eval/synthphys/accuracy"] for h in history if "eval/synthphys/accuracy" in h] == \
        [r["eval/synthphys/accuracy"] for r in with_eval]


def test_eval_freq_without_an_eval_section_is_refused(tiny_model_dir, synth_data_dir, tmp_path):
    from reasonkit.train.recipe import load_recipe

    path = recipe_with_eval(tmp_path, tiny_model_dir, synth_data_dir, tmp_path / "run")
    path.write_text(path.read_text().split("[eval]")[0])
    with pytest.raises(ConfigError, match=r"eval_freq needs an \[eval\] section"):
        load_recipe(path)


def test_eval_logs_scores_to_wandb(tiny_model_dir, synth_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    results = tmp_path / "results"
    assert cli.main(["eval", "synthphys", "--config", "synthphys", "--model", str(tiny_model_dir), "--data-dir",
                     str(synth_data_dir), "--results-dir", str(results), "--limit", "5", "--answer-type", "letter",
                     "--wandb-project", "rk-test"]) == 0
    (run_file,) = (results / "wandb").glob("offline-run-*/run-*.wandb")
    records = list(wandb_records(run_file))
    history = [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    (row,) = [h for h in history if "eval/synthphys/accuracy" in h]
    store = next(results.rglob("seed1.jsonl"))
    correct = sum(json.loads(line)["correct"] for line in store.read_text().splitlines())
    assert row["eval/synthphys/accuracy"] == pytest.approx(100 * correct / 5)
    assert row["eval/synthphys/coverage"] == 100.0
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "rk-test"


def test_grpo_evaluates_too(tiny_model_dir, synth_data_dir, tmp_path):
    from test_grpo import grpo_recipe, logged

    from reasonkit.train.grpo.trainer import train_grpo

    out = tmp_path / "run"
    train_grpo(grpo_recipe(tiny_model_dir, synth_data_dir, out, "train.max_steps=1", "train.eval_freq=1",
                           "eval.benchmark=synthphys", f"eval.data_dir={synth_data_dir}", "eval.limit=2",
                           "eval.config=synthphys", "eval.answer_type=letter", "eval.keep_models=true"))
    (record,) = logged(out)
    assert record["eval/synthphys/coverage"] == 100.0 and record["eval/synthphys/accuracy"] in (0.0, 50.0, 100.0)
    assert (out / "eval" / "model_step_000001" / "config.json").is_file()  # kept: [eval] keep_models
