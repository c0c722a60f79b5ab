"""lm-eval integration on the tiny model, offline: local YAML tasks over a 4-question JSONL file (no hub).
lm-eval has no video tasks; these are text tasks run on the same checkpoint reasonkit evaluates."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from reasonkit import cli

DATA = Path(__file__).parent / "data" / "lmeval"
pytest.importorskip("lm_eval")


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory):
    """The task YAMLs with the absolute path of the data file (lm-eval resolves data_files from its cwd)."""
    out = tmp_path_factory.mktemp("lmeval-tasks")
    for template in DATA.glob("*.yaml.template"):
        text = template.read_text().format(data=DATA / "tiny.jsonl")
        (out / template.name.removesuffix(".template")).write_text(text)
    return out


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    from reasonkit.evaluate.lmeval import ReasonkitLM

    return ReasonkitLM(pretrained=str(tiny_model_dir), dtype="float32", device="cpu", batch_size=4)


def docs() -> list[dict]:
    return [json.loads(line) for line in (DATA / "tiny.jsonl").read_text().splitlines()]


def test_loglikelihood_is_the_continuations_log_probability(lm, tiny_model_dir):
    import torch
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    context, continuation = "Question: Does ice melt?\nAnswer:", " yes"
    ctx_ids = tok(context, add_special_tokens=False)["input_ids"]
    all_ids = tok(context + continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([all_ids])).logits[0, :-1].float(), -1)
    expected = sum(float(logp[i - 1, all_ids[i]]) for i in range(len(ctx_ids), len(all_ids)))
    ((value, greedy),) = lm.loglikelihood([SimpleNamespace(args=(context, continuation))])
    assert value == pytest.approx(expected, abs=1e-4) and value < 0 and isinstance(greedy, bool)
    # A trailing space of the context moves to the continuation (lm-eval's convention): same tokens, same value.
    ((moved, _),) = lm.loglikelihood([SimpleNamespace(args=(context + " ", "yes"))])
    assert moved == pytest.approx(value, abs=1e-5)


def test_simple_evaluate_runs_local_tasks(lm, tasks_dir):
    import lm_eval
    from lm_eval.tasks import TaskManager

    results = lm_eval.simple_evaluate(model=lm, tasks=["rk_tiny_mc", "rk_tiny_gen"],
                                      task_manager=TaskManager(include_path=str(tasks_dir)), random_seed=0)
    # acc is the share of questions whose reference choice has the highest log-likelihood under our LM.
    expected_hits = []
    for doc in docs():
        context = f"Question: {doc['question']}\nAnswer:"
        scores = [v for v, _ in lm.loglikelihood([SimpleNamespace(args=(context, f" {c}")) for c in doc["choices"]])]
        expected_hits.append(max(range(len(scores)), key=scores.__getitem__) == doc["answer"])
    assert results["results"]["rk_tiny_mc"]["acc,none"] == pytest.approx(sum(expected_hits) / 4)
    outputs = lm.generate_until([SimpleNamespace(args=(d["question"], {"until": ["\n"], "max_gen_toks": 6,
                                                                        "do_sample": False})) for d in docs()])
    assert all("\n" not in o for o in outputs)
    hits = sum(o.strip() == d["target"] for o, d in zip(outputs, docs()))
    assert results["results"]["rk_tiny_gen"]["exact_match,none"] == pytest.approx(hits / 4)
    assert results["n-samples"]["rk_tiny_mc"]["effective"] == 4


def test_reasonkit_eval_runs_lm_eval_tasks_beside_its_results(tiny_model_dir, tasks_dir, tmp_path, capsys):
    results = tmp_path / "results"
    assert cli.main(["eval", "--model", str(tiny_model_dir), "--set", "model.dtype=float32", "--results-dir",
                     str(results), "--lm-eval-tasks", "rk_tiny_mc", "--lm-eval-path", str(tasks_dir)]) == 0
    (path,) = results.glob("*/lm-eval/results.json")
    saved = json.loads(path.read_text())
    assert saved["tasks"] == ["rk_tiny_mc"] and 0 <= saved["results"]["rk_tiny_mc"]["acc,none"] <= 1
    assert path.parent.parent.name.startswith(tiny_model_dir.name)  # the model's results folder
    out = capsys.readouterr().out
    assert "lm-eval:" in out and "rk_tiny_mc" in out and f"written: {path}" in out
    code = cli.main(["eval", "--model", str(tiny_model_dir), "--results-dir", str(results),
                     "--lm-eval-tasks", "no_such_task", "--lm-eval-path", str(tasks_dir)])
    assert code == 2 and "lm-eval task(s) not found: no_such_task" in capsys.readouterr().err


def test_lm_eval_command_line_knows_the_reasonkit_model(tiny_model_dir, tasks_dir, tmp_path):
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "reasonkit.evaluate.lmeval", "--model", "reasonkit",
                           "--model_args", f"pretrained={tiny_model_dir},dtype=float32", "--device", "cpu",
                           "--tasks", "rk_tiny_mc", "--include_path", str(tasks_dir), "--output_path",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (saved,) = (tmp_path / "out").rglob("results_*.json")
    acc = json.loads(saved.read_text())["results"]["rk_tiny_mc"]["acc,none"]
    assert 0 <= acc <= 1 and not math.isnan(acc)
