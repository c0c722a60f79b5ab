"""Paired comparison statistics (reasonkit.scoring.paired) against hand-computed values, and `reasonkit compare`
on result folders written in the store's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import write_run

from reasonkit.scoring.paired import (
    cluster_bootstrap,
    compare_dataset,
    flips,
    macro,
    mcnemar_exact,
    pair_runs,
    percentile_ci,
)


def rec(qid: str, correct: bool, video: str | None = None, *, status: str = "ok", dataset: str = "ds",
        task: str | None = None, seed: int = 1) -> dict:
    return {"id": qid, "video_id": video or qid.split("#")[0], "correct": correct, "status": status,
            "dataset": dataset, "seed": seed, "meta": {"task": task} if task else {}}


@pytest.mark.parametrize("a_only,b_only,expected", [
    (1, 5, 14 / 64),            # 2 * (C(6,0) + C(6,1)) / 2^6
    (0, 5, 2 / 32),             # 2 * C(5,0) / 2^5
    (2, 10, 2 * 79 / 4096),     # 2 * (1 + 12 + 66) / 2^12
    (3, 3, 1.0),                # the doubled tail exceeds 1: capped
    (0, 0, 1.0),                # no discordant pairs: no evidence either way
])
def test_mcnemar_exact_hand_computed(a_only, b_only, expected):
    assert mcnemar_exact(a_only, b_only) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(b_only, a_only) == pytest.approx(expected, rel=1e-12)  # two-sided: symmetric


def test_mcnemar_matches_scipy_binomtest():
    stats = pytest.importorskip("scipy.stats")
    for x, y in [(4, 17), (9, 11), (0, 30), (25, 40)]:
        assert mcnemar_exact(x, y) == pytest.approx(stats.binomtest(x, x + y, 0.5).pvalue, rel=1e-9)


def test_pairing_reports_the_questions_only_one_side_recorded():
    a = {1: [rec("q1", True), rec("q2", True), rec("q3", False), rec("q4", False)]}
    b = {1: [rec("q2", False), rec("q3", True), rec("q4", True), rec("q5", True)]}
    paired = pair_runs(a, b)
    assert paired.ids == ["q2", "q3", "q4"]
    assert paired.only_a == ["q1"] and paired.only_b == ["q5"]
    row = compare_dataset(paired, reps=200)
    assert row["paired"] == 3 and row["only_a"] == 1 and row["only_b"] == 1
    # On the paired questions: A right on q2 (1/3), B right on q3, q4 (2/3).
    assert row["acc_a"] == pytest.approx(100 / 3) and row["acc_b"] == pytest.approx(200 / 3)
    assert row["diff"] == pytest.approx(100 / 3)
    assert (row["a_only_right"], row["b_only_right"]) == (1, 2)
    assert row["mcnemar_p"] == pytest.approx(1.0)  # n=3, k=1: 2 * (1 + 3) / 8, capped
    assert flips(paired) == {"gained": ["q3", "q4"], "lost": ["q2"]}


def test_error_records_count_as_wrong():
    a = {1: [rec("q1", True, status="error"), rec("q2", True)]}
    b = {1: [rec("q1", True), rec("q2", True)]}
    row = compare_dataset(pair_runs(a, b), reps=50)
    assert row["acc_a"] == 50.0 and row["acc_b"] == 100.0 and row["b_only_right"] == 1


def test_bootstrap_resamples_whole_videos():
    # Video v1: two questions B gets and A does not (differences 1, 1); video v2: two ties (0, 0). Drawing 2 of
    # 2 videos gives a mean difference of 1 (v1 twice, p 1/4), 1/2 (p 1/2) or 0 (v2 twice, p 1/4).
    diff = np.array([1.0, 1.0, 0.0, 0.0])
    reps = cluster_bootstrap(diff, ["v1", "v1", "v2", "v2"], reps=4000, seed=3)
    assert set(np.round(reps, 6)) == {0.0, 0.5, 1.0}
    assert np.mean(reps == 1.0) == pytest.approx(0.25, abs=0.03)
    assert np.mean(reps == 0.5) == pytest.approx(0.50, abs=0.03)
    assert percentile_ci(reps) == (0.0, 1.0)
    # Treating the four questions as independent would make "all four gained" rare: (1/2)^4 = 1/16.
    independent = cluster_bootstrap(diff, ["a", "b", "c", "d"], reps=4000, seed=3)
    assert np.mean(independent == 1.0) == pytest.approx(1 / 16, abs=0.02)


def test_bootstrap_ci_is_a_point_when_every_video_agrees():
    a = {1: [rec(f"v{i}#{j}", False, f"v{i}") for i in range(5) for j in range(2)]}
    b = {1: [rec(f"v{i}#{j}", True, f"v{i}") for i in range(5) for j in range(2)]}
    row = compare_dataset(pair_runs(a, b), reps=300)
    assert row["diff"] == 100.0 and (row["ci95_low"], row["ci95_high"]) == (100.0, 100.0)
    assert row["mcnemar_p"] == pytest.approx(2 / 2 ** 10)


def test_seeds_are_averaged_and_mcnemar_runs_per_seed_pair():
    # A: seed 1 right on q1..q4, seed 2 right on q1, q2 -> per-question means 1, 1, .5, .5 (75%).
    a = {1: [rec(f"q{i}", True) for i in range(1, 5)],
         2: [rec(f"q{i}", i <= 2, seed=2) for i in range(1, 5)]}
    # B: one seed, right on q1 only (25%).
    b = {1: [rec(f"q{i}", i == 1) for i in range(1, 5)]}
    row = compare_dataset(pair_runs(a, b), reps=100)
    assert row["acc_a"] == 75.0 and row["acc_b"] == 25.0 and row["diff"] == -50.0
    # Seed 1 pairs with seed 1 (3 discordant, all for A: p = 2/8); seed 2 is left without a partner.
    assert row["seed_pairs"] == 1 and row["mcnemar_p"] == pytest.approx(0.25)
    b[2] = [rec(f"q{i}", i == 1, seed=2) for i in range(1, 5)]
    row = compare_dataset(pair_runs(a, b), reps=100)
    # Seed 2: A right only on q2 (p = 1.0): the headline is the largest p over the pairs.
    assert row["mcnemar_p_per_seed"] == [pytest.approx(0.25), pytest.approx(1.0)]
    assert row["mcnemar_p"] == pytest.approx(1.0)


def test_a_question_counts_as_recorded_only_when_every_seed_has_it():
    a = {1: [rec("q1", True), rec("q2", True)], 2: [rec("q1", True, seed=2)]}
    b = {1: [rec("q1", True), rec("q2", False)]}
    paired = pair_runs(a, b)
    assert paired.ids == ["q1"] and paired.only_b == ["q2"]


def test_macro_averages_datasets_and_pools_mcnemar():
    d1 = pair_runs({1: [rec("x1", False), rec("x2", False)]}, {1: [rec("x1", True), rec("x2", False)]})  # +50
    d2 = pair_runs({1: [rec("y1", True), rec("y2", True)]}, {1: [rec("y1", True), rec("y2", True)]})  # 0
    rows = [compare_dataset(d1, reps=500), compare_dataset(d2, reps=500)]
    m = macro(rows, [d1, d2])
    assert m["diff"] == 25.0 and m["acc_a"] == 50.0 and m["acc_b"] == 75.0 and m["paired"] == 4
    assert m["mcnemar_p"] == pytest.approx(1.0)  # one discordant pair over both datasets
    # d2's replicates are all 0, d1's are 0, .5 or 1 (two clips): the macro replicates are half of d1's.
    assert (m["ci95_low"], m["ci95_high"]) == (0.0, 50.0)


# ------------------------------------------------------------------------------------------ the command
def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from reasonkit.cli import main

    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compare_two_models_of_one_results_folder(tmp_path, capsys):
    results = tmp_path / "results"
    # Two datasets; on "ds" B gains 3 of 4 videos (2 questions each) and A recorded one more video.
    write_run(results, "base", [rec(f"v{i}#{j}", False, f"v{i}") for i in range(5) for j in range(2)])
    write_run(results, "tuned", [rec(f"v{i}#{j}", i < 3, f"v{i}") for i in range(4) for j in range(2)])
    write_run(results, "base", [rec("w1", True), rec("w2", False)], dataset="other")
    write_run(results, "tuned", [rec("w1", True), rec("w2", False)], dataset="other")
    write_run(results, "base", [rec("z1", True)], dataset="only-base")
    code, out, _ = run_cli(["compare", "base", "tuned", "--results-dir", str(results), "--json",
                            "--show-flips", "2"], capsys)
    assert code == 0
    (result,) = json.loads(out)
    assert (result["a"], result["b"]) == ("base", "tuned")
    ds, other = result["datasets"]
    assert (ds["dataset"], ds["paired"], ds["only_a"], ds["only_b"]) == ("ds", 8, 2, 0)
    assert ds["acc_a"] == 0.0 and ds["acc_b"] == 75.0 and ds["diff"] == 75.0
    assert (ds["a_only_right"], ds["b_only_right"]) == (0, 6)
    assert ds["mcnemar_p"] == pytest.approx(2 / 64)
    assert 0 < ds["ci95_low"] <= 75.0 <= ds["ci95_high"] == 100.0
    assert [f["id"] for f in ds["flips"]["gained"]] == ["v0#0", "v0#1"] and ds["flips"]["lost"] == []
    assert other["diff"] == 0.0 and other["mcnemar_p"] == 1.0
    assert result["only_in_a"] == ["only-base/letter"] and result["only_in_b"] == []
    (m,) = result["macro"]
    assert m["diff"] == pytest.approx(37.5) and m["paired"] == 10

    code, out, _ = run_cli(["compare", "base", "tuned", "--results-dir", str(results)], capsys)
    assert code == 0
    assert "2 question(s) recorded only by A" in out and "only A recorded: only-base/letter" in out


def test_compare_many_against_a_baseline_and_bad_names(tmp_path, capsys):
    results = tmp_path / "results"
    for slug, k in (("base", 0), ("sft", 2), ("grpo", 3)):
        write_run(results, slug, [rec(f"q{i}", i < k) for i in range(4)])
    code, out, _ = run_cli(["compare", str(results), "--baseline", "base", "--json"], capsys)
    assert code == 0
    assert [(r["a"], r["b"], r["diff"]) for r in (dict(c, diff=c["datasets"][0]["diff"]) for c in json.loads(out))] \
        == [("base", "grpo", 75.0), ("base", "sft", 50.0)]
    code, _, err = run_cli(["compare", "base", "nope", "--results-dir", str(results)], capsys)
    assert code == 2 and err.strip() == (f"error: nope: is not recorded in {results} (models there: base, grpo, "
                                         f"sft)")
    code, _, err = run_cli(["compare", "base", "--results-dir", str(results)], capsys)
    assert code == 2 and "compare needs two models" in err


def test_compare_finds_an_export_by_its_weights(tmp_path, capsys):
    from reasonkit.backends.loading import model_fingerprint

    export = tmp_path / "run" / "final"
    export.mkdir(parents=True)
    (export / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (export / "model.safetensors").write_bytes(b"weights")
    results = tmp_path / "results"
    write_run(results, "base", [rec("q1", False), rec("q2", False)])
    write_run(results, "final-1234", [rec("q1", True), rec("q2", False)], fingerprint=model_fingerprint(str(export)))
    code, out, _ = run_cli(["compare", "base", str(export), "--results-dir", str(results), "--json"], capsys)
    assert code == 0
    (result,) = json.loads(out)
    assert result["b"] == "final (final-1234)" and result["datasets"][0]["diff"] == 50.0


def test_a_dataset_without_common_questions_is_null_in_json(tmp_path, capsys):
    results = tmp_path / "results"
    write_run(results, "a", [rec("q1", True)])
    write_run(results, "b", [rec("q2", True)])
    code, out, _ = run_cli(["compare", "a", "b", "--results-dir", str(results), "--json"], capsys)
    assert code == 0 and "NaN" not in out
    (row,) = json.loads(out)[0]["datasets"]
    assert (row["paired"], row["only_a"], row["only_b"], row["diff"], row["ci95_low"]) == (0, 1, 1, None, None)
