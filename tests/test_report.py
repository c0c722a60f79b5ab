"""`reasonkit report`: one self-contained HTML page, rendered in headless Chromium (Debian's `chromium`, installed
by `scripts/setup.sh --dev`); the test reads the DOM after the page's script ran and checks a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import write_run

from reasonkit import cli


@pytest.fixture(scope="module")
def results(tiny_model_dir, synth_data_dir, tmp_path_factory):
    """A real eval of the tiny model on synthphys (20 questions, real clips), plus a second "model" written from
    the same records with 15 of 20 right, one of them an error record, so the page has a comparison to show."""
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("report") / "results"
    assert cli.main(["eval", "synthphys", "--config", "synthphys", "--model", str(tiny_model_dir), "--data-dir",
                     str(synth_data_dir), "--results-dir", str(out), "--answer-type", "letter"]) == 0
    (base,) = [p for p in out.iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (base / "synthphys/letter/seed1.jsonl").read_text().splitlines()]
    tuned = [{**r, "correct": i < 15, "extracted": r["answer"] if i < 15 else "Z"} for i, r in enumerate(records)]
    tuned[19] = {**tuned[19], "status": "error", "error": "clip.mp4: cannot open video", "output": None}
    write_run(out, "tuned", tuned, dataset="synthphys", model="tuned-model")
    # A second seed at 20%: the bar (seed mean 47.5%) falls outside the first seed's CI, as real seeds can.
    write_run(out, "tuned", [{**r, "correct": i < 4} for i, r in enumerate(records)], dataset="synthphys",
              model="tuned-model", seed=2)
    # What `reasonkit eval --lm-eval-tasks` writes beside a model's results (tests/test_lmeval.py runs it).
    (out / "tuned" / "lm-eval").mkdir()
    (out / "tuned" / "lm-eval" / "results.json").write_text(json.dumps({
        "results": {"rk_tiny_mc": {"alias": "rk_tiny_mc", "acc,none": 0.75, "acc_stderr,none": 0.25,
                                   "sample_len": 4}}, "n_samples": {"rk_tiny_mc": {"effective": 4}}}))
    return out, base.name, records


def test_report_context_matches_score_and_compare(results):
    from reasonkit.scoring.html_report import build_context

    out, base, records = results
    ctx = build_context(out, baseline=base, samples=5)
    base_acc = 100 * sum(r["correct"] for r in records) / 20
    acc = {r["model"]: r["accuracy"] for r in ctx["rows"]}
    assert acc == {base: pytest.approx(base_acc), "tuned": 47.5}
    (tuned_row,) = [r for r in ctx["rows"] if r["model"] == "tuned"]
    assert tuned_row["seed_accuracies"] == [75.0, 20.0] and tuned_row["ci95_low"] > 47.5
    (comparison,) = ctx["comparisons"]
    assert (comparison["a"], comparison["b"]) == (base, "tuned")
    assert comparison["datasets"][0]["diff"] == pytest.approx(47.5 - base_acc)  # per question: mean over seeds
    assert [e["id"] for e in ctx["errors"]] == [records[19]["id"]]
    assert {t["type"] for t in ctx["type_rows"]} == {"collide", "count", "direction", "faster", "moving"}
    assert len(ctx["samples"]) == 10
    shown = ctx["samples"][0]
    # Thumbnails of the frames the record says the model saw (4 of them here), as JPEG data URIs.
    assert [t["t"] for t in shown["thumbs"]] == [round(t, 2) for t in records[0]["frame_timestamps"]][:4]
    assert all(t["src"].startswith("data:image/jpeg;base64,") for t in shown["thumbs"])


class DOM(HTMLParser):
    """The elements the test looks at: ids, tags counted, the text under each id'd element."""

    def __init__(self):
        super().__init__()
        self.tags: dict[str, int] = {}
        self.images: list[str] = []
        self.text: dict[str, str] = {}
        self.rows_by_table: dict[str, int] = {}
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "tr":
            table = next((i for t, i in reversed(self._open) if t == "table" and i), None)
            if table:
                self.rows_by_table[table] = self.rows_by_table.get(table, 0) + 1
        if tag not in ("img", "br", "meta", "input", "link", "path", "use", "rect", "circle", "line"):
            self._open.append((tag, attrs.get("id")))
            if attrs.get("id"):
                self.text.setdefault(attrs["id"], "")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):  # cells apart in the text, as a reader sees them
            self.handle_data(" ")
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, ident in self._open:
            if ident:
                self.text[ident] += data


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: `bash scripts/setup.sh --dev` installs Debian's chromium")
    return exe


def headless(exe: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'profile'}", *args], capture_output=True, text=True,
                          timeout=120, check=True)


def test_report_renders_in_chromium(results, tmp_path, capsys):
    from PIL import Image

    out, base, _ = results
    page = tmp_path / "report.html"
    assert cli.main(["report", str(out), "--out", str(page), "--baseline", base, "--samples", "6"]) == 0
    assert f"written: {page}" in capsys.readouterr().out
    html = page.read_text()
    # Self-contained: nothing is fetched when the page opens (SVG namespaces are names, not requests).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html) and "<link" not in html
    assert "@import" not in html and "url(http" not in html

    exe = chromium()
    dom = DOM()
    dom.feed(headless(exe, tmp_path, "--dump-dom", page.as_uri()).stdout)
    assert dom.text["filter-count"] == "12 of 12 shown"  # written by the page's script: it ran
    assert dom.rows_by_table["sample-table"] == 1 + 12 and dom.rows_by_table["error-table"] == 1 + 1
    assert dom.rows_by_table["accuracy-table"] == 1 + 2 and dom.rows_by_table["type-table"] == 1 + 10
    assert dom.tags["svg"] >= 3  # accuracy, comparison forest, question types
    jpegs = [s for s in dom.images if s.startswith("data:image/jpeg;base64,")]
    assert len(jpegs) == len(dom.images) >= 11 * 4  # every sample but the error record has 4 frames
    assert "47.5 ± 38.9" in dom.text["accuracy-table"] and "75.0, 20.0" in dom.text["accuracy-table"]
    assert "tuned" in dom.text["comparison"]
    assert "cannot open video" in dom.text["error-table"]
    assert dom.rows_by_table["lm-eval-table"] == 1 + 1
    assert " ".join(dom.text["lm-eval-table"].split()).endswith("tuned rk_tiny_mc acc 0.7500 0.2500 4")

    shot = tmp_path / "shot.png"
    headless(exe, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert image.shape == (1600, 1200, 3)
    top = image[:80]  # the title line: dark text on white
    assert (top.mean(axis=2) < 100).mean() > 0.005 and image.mean() > 200
    bars = image[200:600]  # the accuracy plot's bars in the first two series colours
    blue = (abs(bars - [76, 114, 176]).sum(axis=2) < 40).sum()
    orange = (abs(bars - [221, 132, 82]).sum(axis=2) < 40).sum()
    assert orange > 500, (blue, orange)


def test_report_of_a_folder_without_results_is_one_line(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path}: no result files (seed*.jsonl with a manifest) found\n"
    assert not (tmp_path / "r.html").exists()
