"""`reasonkit score`: --scorer, accuracy per question type and the frame budget sampled, on result folders
written in the store's layout (no model: the numbers are set by the records)."""

from __future__ import annotations

import json

import pytest
from helpers import write_run

from reasonkit import cli


def record(i: int, task: str | None, upstream: bool, strict: bool, shape=(4, 112, 112, 3)) -> dict:
    return {"id": f"q{i}", "video_id": f"v{i}", "status": "ok", "correct": upstream, "meta": {"task": task} if task
            else {}, "frame_shape": list(shape), "frame_spec": {"fps": 2.0, "max_pixels": 12544, "max_frames": 16},
            "scores": {"upstream": {"extracted": "A", "correct": upstream}, "strict": {"extracted": "B",
                                                                                       "correct": strict}}}


@pytest.fixture
def results(tmp_path):
    out = tmp_path / "results"
    # count: upstream 2/3 right, strict 1/3; direction: upstream 0/2, strict 2/2; one clip sampled smaller.
    recs = [record(0, "count", True, True), record(1, "count", True, False), record(2, "count", False, False),
            record(3, "direction", False, True), record(4, "direction", False, True, shape=(8, 56, 84, 3))]
    write_run(out, "m", recs, dataset="synthphys")
    write_run(out, "m", [record(9, None, True, True, shape=(16, 224, 224, 3))], dataset="robovqa")
    return out


def score_json(args, capsys) -> list[dict]:
    capsys.readouterr()
    assert cli.main(["score", *args, "--json"]) == 0
    return {r["dataset"]: r for r in json.loads(capsys.readouterr().out)}


def test_types_frames_and_scorer(results, capsys):
    rows = score_json([str(results)], capsys)
    synth = rows["synthphys"]
    assert synth["scorer"] == "upstream" and synth["accuracy"] == pytest.approx(40.0)
    assert {t: (v["correct"], v["n"]) for t, v in synth["by_type"].items()} == {"count": (2, 3), "direction": (0, 2)}
    assert synth["by_type"]["count"]["accuracy"] == pytest.approx(200 / 3)
    assert synth["frame_budget"] == {
        "frames_min": 4, "frames_max": 8, "pixels_min": 56 * 84, "pixels_max": 112 * 112, "size_min": [56, 84],
        "size_max": [112, 112], "fps": 2.0, "spec_max_pixels": 12544, "spec_max_frames": 16}
    assert rows["robovqa"]["by_type"] == {}  # no question types: the dataset row is the breakdown

    strict = score_json([str(results), "--scorer", "strict"], capsys)["synthphys"]
    assert strict["scorer"] == "strict" and strict["accuracy"] == pytest.approx(60.0)
    assert {t: v["correct"] for t, v in strict["by_type"].items()} == {"count": 1, "direction": 2}


def test_table_shows_types_and_frames(results, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["score", str(results)]) == 0
    out = capsys.readouterr().out
    assert "4–8 fr · 56×84–112×112 px" in out and "16 fr · 224×224 px" in out
    assert "accuracy per question type" in out and "direction" in out


def test_unknown_scorer_names_the_file(results, capsys):
    assert cli.main(["score", str(results), "--scorer", "lenient"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "seed1.jsonl: scorer 'lenient' was not run" in err
    assert "(recorded: strict, upstream)" in err and "\n" not in err
