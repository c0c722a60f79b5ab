"""`reasonkit eval` / `score` end to end: upstream-format data, records, coverage, retries, resume after
SIGKILL, and one-line errors on bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import make_upstream_benchmark, robovqa_like, write_clip

from reasonkit import cli
from reasonkit.evaluate.store import ResultStore, find_stores
from reasonkit.hookspecs import hookimpl
from reasonkit.plugins import build_plugins
from reasonkit.types import FrameSpec, GenResult


def records_of(results: Path) -> list[dict]:
    return [r for store in find_stores(results) for r in store.records()]


@pytest.fixture(scope="module")
def robovqa_dir(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("robovqa-data")
    robovqa_like(data)
    return data


# ---- a scripted backend, registered through the backends hook ------------------------------------------------
class ScriptedBackend:
    """Answers from a script so that scores and retries can be checked exactly (a real model's answers cannot be
    chosen); the runner, scorers, store and report around it are the real ones."""

    calls: list[list] = []

    def __init__(self, model, **options):
        self.answers = json.loads(Path(model, "script.json").read_text())

    def generate(self, requests):
        ScriptedBackend.calls.append([(r.max_tokens, round(r.temperature, 2), r.seed) for r in requests])
        out = []
        for r in requests:
            question = r.messages[-1]["content"][-1]["text"].splitlines()[0]
            script = self.answers[question]
            out.append(GenResult(texts=[script.pop(0) if len(script) > 1 else script[0]], token_ids=[[1, 2]]))
        return out

    def close(self):
        pass


class ScriptedPlugin:
    @hookimpl
    def reasonkit_register_backends(self, register):
        register("scripted", ScriptedBackend)


@pytest.fixture
def scripted(tmp_path, fresh_plugins):
    model = tmp_path / "scripted-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    script = {
        "Is the arm moving?": ["<think>it moves</think>\n\n<answer>A</answer>"],
        "What is grasped?": ["no idea", "<answer>nope</answer>", "<answer>The answer is C</answer>"],
        "Task done?": ["<answer>A</answer>"],
        "Where?": ["<answer>A</answer>"], "Why?": ["<answer>B</answer>"],
    }
    (model / "script.json").write_text(json.dumps(script))
    fresh_plugins.reset_plugins(build_plugins(extra=[("scripted", ScriptedPlugin())]))
    assert fresh_plugins.get_backend_factory("scripted") is ScriptedBackend
    ScriptedBackend.calls = []
    return model


def test_scores_retries_and_coverage_exact(scripted, robovqa_dir, tmp_path, capsys):
    results = tmp_path / "results"
    rc = cli.main(["eval", "robovqa", "--model", str(scripted), "--backend", "scripted", "--data-dir",
                   str(robovqa_dir), "--results-dir", str(results), "--batch-size", "8",
                   "--set", "generation.max_retries=3"])
    assert rc == 3  # finished, results written, but two questions are error records
    err = capsys.readouterr().err.splitlines()
    kinds = sorted(line for line in err if line.startswith("error records: "))
    assert len(kinds) == 2 and "video file not found (first: " in kinds[1] and "missing.mp4" in kinds[1]
    assert "cannot open video" in kinds[0] or "cannot decode video" in kinds[0]
    assert err[-1].startswith("error: 2 of 5 questions are error records") and "--retry-errors" in err[-1]
    recs = {r["id"]: r for r in records_of(results)}
    assert sorted(recs) == ["corrupt#0", "missing#0", "v1#0", "v1#1", "v2#0"]  # every question, none dropped
    assert recs["missing#0"]["status"] == "error" and "video file not found" in recs["missing#0"]["error"]
    assert recs["corrupt#0"]["status"] == "error" and "cannot" in recs["corrupt#0"]["error"]
    # v1#1 is unparseable twice, then "The answer is C": upstream reads "T" (wrong), strict reads "C"
    r = recs["v1#1"]
    assert r["retries"] == 2 and r["extracted"] == "T" and r["correct"] is False
    assert r["scores"]["strict"] == {"extracted": "C", "correct": True} and r["scorers_disagree"]
    assert recs["v1#0"]["correct"] and recs["v1#0"]["reasoning"] == "it moves" and not recs["v2#0"]["correct"]
    # retry k: +256k tokens, +0.05k temperature, only the unparseable question is asked again
    assert ScriptedBackend.calls[1:] == [[(1024 + 256, 0.65, 2)], [(1024 + 512, 0.7, 3)]]
    assert recs["v1#0"]["frame_timestamps"][0] == 0.0 and recs["v1#0"]["sampled_fps"] == pytest.approx(4.0)
    assert recs["v1#0"]["frame_spec"]["fps"] == 4.0
    capsys.readouterr()
    assert cli.main(["score", str(results), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    (row,) = [x for x in rows if x["dataset"] == "robovqa"]
    assert row["accuracy"] == pytest.approx(100 * 1 / 5) and (row["scored"], row["total"]) == (3, 5)
    assert row["coverage"] == pytest.approx(60.0) and row["scorer_disagreements"] == 1
    assert (results / "scores.csv").read_text().startswith("model,")


def test_letter_mode_is_greedy_and_short(scripted, robovqa_dir, tmp_path):
    rc = cli.main(["eval", "robovqa", "--model", str(scripted), "--backend", "scripted", "--data-dir",
                   str(robovqa_dir), "--results-dir", str(tmp_path / "r"), "--answer-type", "letter",
                   "--set", "generation.max_retries=0", "--limit", "2"])
    assert rc == 0
    assert ScriptedBackend.calls[0] == [(10, 0.0, 1), (10, 0.0, 1)]
    assert len(records_of(tmp_path / "r")) == 2


def test_seeds_aggregate_and_models_never_pool(scripted, robovqa_dir, tmp_path, capsys):
    results = tmp_path / "results"
    for seed in (1, 2):
        assert cli.main(["eval", "robovqa", "--model", str(scripted), "--backend", "scripted", "--data-dir",
                         str(robovqa_dir), "--results-dir", str(results), "--seed", str(seed),
                         "--set", "generation.max_retries=0"]) == 3
    other = tmp_path / "other-model"
    other.mkdir()
    for f in scripted.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "config.json").write_text('{"other": true}')
    assert cli.main(["eval", "robovqa", "--model", str(other), "--backend", "scripted", "--data-dir",
                     str(robovqa_dir), "--results-dir", str(results), "--set", "generation.max_retries=0"]) == 3
    capsys.readouterr()
    assert cli.main(["score", str(results), "--json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["dataset"] == "robovqa"]
    assert len(rows) == 2 and len({r["model"] for r in rows}) == 2
    two_seeds = [r for r in rows if r["seeds"] == [1, 2]]
    assert len(two_seeds) == 1 and two_seeds[0]["std_over_seeds"] == pytest.approx(0.0)


# ---- the real tiny model ---------------------------------------------------------------------------------------
def test_eval_with_tiny_model_records_everything(tiny_model_dir, robovqa_dir, tmp_path):
    results = tmp_path / "results"
    rc = cli.main(["eval", "robovqa", "--model", str(tiny_model_dir), "--data-dir", str(robovqa_dir),
                   "--results-dir", str(results), "--batch-size", "2", "--set", "generation.max_tokens=8",
                   "--set", "generation.max_retries=1"])
    assert rc == 3  # the missing and the corrupt clip
    (store,) = find_stores(results)
    manifest = store.manifest()
    assert manifest["n_total"] == 5 and manifest["versions"]["transformers"] and manifest["model_fingerprint"]
    recs = store.records()
    ok = [r for r in recs if r["status"] == "ok"]
    assert len(recs) == 5 and len(ok) == 3
    for r in ok:
        assert isinstance(r["output"], str) and r["output_tokens"] <= 8 + 256
        assert len(r["frame_timestamps"]) == r["frame_shape"][0] and r["prompt_hash"]


def test_synthphys_demo_preset(tiny_model_dir, synth_data_dir, tmp_path):
    rc = cli.main(["eval", "synthphys", "--model", str(tiny_model_dir), "--data-dir", str(synth_data_dir),
                   "--results-dir", str(tmp_path / "r"), "--limit", "6"])
    assert rc == 0
    recs = records_of(tmp_path / "r")
    assert len(recs) == 6 and all(r["status"] == "ok" for r in recs)
    assert recs[0]["frame_spec"]["max_frames"] == 16  # the benchmark's own frame spec


def test_seeds_in_one_pass_equal_one_run_per_seed(tiny_model_dir, synth_data_dir, tmp_path):
    """`--seeds 0,1,2` (sampled, with retries) writes the records and manifests three `--seed k` runs write, decodes
    each clip and runs the vision tower on it once for all seeds, prefills each question once, and resumes per
    seed (a seed already complete is not run again)."""
    from reasonkit.backends.hf import HFBackend
    from reasonkit.config import EvalConfig, load_config, preset_path
    from reasonkit.evaluate.runner import run_eval

    def config(results: Path, seeds: str) -> EvalConfig:
        return load_config(EvalConfig, preset_path("synthphys"), [
            f"model.model_name={tiny_model_dir}", f"data_dir={synth_data_dir}", f"results_dir={results}",
            "evaluation.limit=6", "evaluation.batch_size=4", "generation.max_tokens=6", "generation.max_retries=1",
            "generation.temperature=1.0", seeds])

    backend = HFBackend(str(tiny_model_dir), device="cpu")
    prefills, calls = [], []  # rows prefilled; per backend call: (distinct questions asked, rows prefilled)
    hook = backend.model.model.language_model.register_forward_hook(
        lambda m, args, kw, out: prefills.append(kw["inputs_embeds"].shape[0])
        if kw["inputs_embeds"].shape[1] > 1 else None, with_kwargs=True)
    generate = backend.generate

    def counting(requests, **kw):
        before = sum(prefills)
        results = generate(requests, **kw)
        calls.append((len({json.dumps(r.messages) for r in requests}), sum(prefills) - before, len(requests)))
        return results

    backend.generate = counting
    try:
        together = run_eval(config(tmp_path / "together", "evaluation.seeds=[0,1,2]"), backend=backend,
                            progress=False)
    finally:
        hook.remove()
        backend.generate = generate
    assert calls[0] == (4, 4, 12)  # the first batch: 4 questions x 3 seeds, each question prefilled once
    assert all(distinct == rows for distinct, rows, _ in calls) and len(calls) > 2  # retries too
    vision = backend._generation_engine.vision
    assert vision.tower_calls == 2 and len(vision.entries) == len({r["video"] for r in together[0].records()})
    assert [s.path.name for s in together] == ["seed0.jsonl", "seed1.jsonl", "seed2.jsonl"]
    apart = [run_eval(config(tmp_path / "apart", f"evaluation.seed={k}"), backend=backend, progress=False)[0]
             for k in range(3)]
    keys = ("id", "seed", "output", "extracted", "correct", "retries", "prompt_hash", "output_tokens")
    for one, alone in zip(together, apart):
        assert [{k: r[k] for k in keys} for r in one.records()] == [{k: r[k] for k in keys} for r in alone.records()]
        assert one.manifest()["config_hash"] == alone.manifest()["config_hash"]
    outputs = [[r["output"] for r in store.records()] for store in together]
    assert outputs[0] != outputs[1] != outputs[2]  # the seeds really differ
    assert any(r["retries"] for store in together for r in store.records())  # retries went through the same path
    before = [len(s.records()) for s in apart]
    resumed = run_eval(config(tmp_path / "apart", "evaluation.seeds=[1,3]"), backend=backend, progress=False)
    assert [len(s.records()) for s in resumed] == [6, 6] and [len(s.records()) for s in apart] == before
    assert [r["output"] for r in resumed[0].records()] == outputs[1]


def test_seeds_flag_takes_lists_and_ranges(scripted, robovqa_dir, tmp_path):
    from reasonkit.cli.evaluate import parse_seeds

    assert parse_seeds("0-2,7") == [0, 1, 2, 7] and parse_seeds("5") == [5] and parse_seeds("-1,3") == [-1, 3]
    results = tmp_path / "results"
    assert cli.main(["eval", "robovqa", "--model", str(scripted), "--backend", "scripted", "--data-dir",
                     str(robovqa_dir), "--results-dir", str(results), "--seeds", "3-4",
                     "--set", "generation.max_retries=0"]) == 3
    assert sorted(s.path.name for s in find_stores(results)) == ["seed3.jsonl", "seed4.jsonl"]


# ---- crash safety ----------------------------------------------------------------------------------------------
def test_sigkill_and_resume_records_each_question_once(tiny_model_dir, tmp_path):
    data = tmp_path / "data"
    entries = [{"video": f"clips/c{i}.mp4", "qa_pairs": [
        {"question": f"Q{i}-{j}?", "index2ans": {"A": "yes", "B": "no"}, "answer": "AB"[j % 2]} for j in range(2)]}
        for i in range(10)]
    make_upstream_benchmark(data, "robovqa", entries, {f"clips/c{i}.mp4": 8 for i in range(10)})
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "reasonkit", "eval", "robovqa", "--model", str(tiny_model_dir), "--data-dir",
           str(data), "--results-dir", str(results), "--batch-size", "1", "--set", "generation.max_tokens=4",
           "--set", "generation.max_retries=0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    for target in (3, 9, 14):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            stores = find_stores(results)
            if stores and len(stores[0].records()) >= target:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.05)
        proc.wait()
    assert kills >= 2, "the run finished before it could be killed; make it longer"
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    (store,) = find_stores(results)
    ids = [r["id"] for r in store.records()]
    assert len(ids) == 20 and len(set(ids)) == 20
    raw = store.path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 20


def test_torn_last_line_is_cut_on_resume(tmp_path):
    store = ResultStore(tmp_path / "m" / "b" / "reasoning" / "seed1.jsonl")
    manifest = {"model_fingerprint": "x", "config_hash": "y"}
    store.open(manifest, resume=True)
    store.append([{"id": "a"}, {"id": "b"}])
    with store.path.open("ab") as f:
        f.write(b'{"id": "c", "outp')  # killed mid-write
    assert store.open(manifest, resume=True) == {"a", "b"}
    store.append([{"id": "c"}])
    assert [r["id"] for r in store.records()] == ["a", "b", "c"]


def test_resume_refuses_a_different_model_and_no_resume_keeps_a_backup(tmp_path):
    from reasonkit.errors import ReasonkitError

    store = ResultStore(tmp_path / "seed1.jsonl")
    store.open({"model_fingerprint": "x", "config_hash": "y"}, resume=True)
    store.append([{"id": "a"}])
    with pytest.raises(ReasonkitError, match="different model fingerprint.*--no-resume"):
        store.open({"model_fingerprint": "z", "config_hash": "y"}, resume=True)
    assert store.open({"model_fingerprint": "z", "config_hash": "y"}, resume=False) == set()
    backups = list(tmp_path.glob("seed1.jsonl.*.bak"))
    assert len(backups) == 1 and json.loads(backups[0].read_text())["id"] == "a"


def test_retry_errors_replaces_the_error_records_and_plain_resume_skips_them(scripted, robovqa_dir, tmp_path,
                                                                            capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(robovqa_dir, data)
    results = tmp_path / "results"
    args = ["eval", "robovqa", "--model", str(scripted), "--backend", "scripted", "--data-dir", str(data),
            "--results-dir", str(results), "--set", "generation.max_retries=0"]
    assert cli.main(args) == 3
    clips = data / "benchmark" / "robovqa" / "clips"
    (missing,) = [r["video"] for r in records_of(results) if r["id"] == "missing#0"]
    write_clip(Path(missing), frames=8)  # the user fixes one clip
    assert cli.main(args) == 3  # plain resume: nothing is asked again, the error records stay
    assert len(records_of(results)) == 5 and len(ScriptedBackend.calls) == 1
    capsys.readouterr()
    assert cli.main([*args, "--retry-errors"]) == 3  # the corrupt clip still fails
    recs = records_of(results)
    assert sorted(r["id"] for r in recs) == ["corrupt#0", "missing#0", "v1#0", "v1#1", "v2#0"]  # replaced, once
    by_id = {r["id"]: r for r in recs}
    assert by_id["missing#0"]["status"] == "ok" and by_id["corrupt#0"]["status"] == "error"
    assert ScriptedBackend.calls[-1] == [(1024, 0.6, 1)]  # only the fixed question was generated again
    assert "1 of 5 questions are error records" in capsys.readouterr().err
    assert clips.is_dir()


def test_resume_refusal_names_the_changed_keys(scripted, robovqa_dir, tmp_path, capsys):
    args = ["eval", "robovqa", "--model", str(scripted), "--backend", "scripted", "--data-dir", str(robovqa_dir),
            "--results-dir", str(tmp_path / "results"), "--set", "generation.max_retries=0"]
    assert cli.main(args) == 3
    capsys.readouterr()
    assert cli.main([*args, "--set", "generation.temperature=0.2", "--set", "frames.fps=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "changed frames.fps, generation.temperature;" in err and "--no-resume" in err


def test_letter_mode_records_the_generation_it_used(scripted, robovqa_dir, tmp_path):
    assert cli.main(["eval", "robovqa", "--model", str(scripted), "--backend", "scripted", "--data-dir",
                     str(robovqa_dir), "--results-dir", str(tmp_path / "r"), "--answer-type", "letter",
                     "--set", "generation.temperature=0.7", "--set", "generation.max_retries=0"]) == 3
    (store,) = find_stores(tmp_path / "r")
    generation = store.manifest()["identity"]["generation"]
    assert generation["temperature"] == 0.0 and generation["max_tokens"] == 10  # greedy, 10 tokens: upstream's
    assert {call[:2] for call in ScriptedBackend.calls[0]} == {(10, 0.0)}


# ---- bad input: one line, non-zero exit, results kept ----------------------------------------------------------
def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reasonkit", *args], capture_output=True, text=True)


def test_bad_inputs_fail_with_one_clear_line(scripted, robovqa_dir, tmp_path):
    results = tmp_path / "results"
    assert cli.main(["eval", "robovqa", "--model", str(scripted), "--backend", "scripted", "--data-dir",
                     str(robovqa_dir), "--results-dir", str(results), "--set", "generation.max_retries=0"]) == 3
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}

    malformed = tmp_path / "malformed"
    (malformed / "benchmark" / "robovqa").mkdir(parents=True)
    (malformed / "benchmark" / "robovqa" / "robovqa_benchmark_qa_pairs.json").write_text('[{"video": ')
    escaping = tmp_path / "escaping"
    make_upstream_benchmark(escaping, "robovqa", [{"video": "../../../etc/passwd", "qa_pairs": {
        "question": "q", "index2ans": {"A": "a"}, "answer": "A"}}], {})
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    base = ["eval", "robovqa", "--results-dir", str(results), "--model", str(scripted)]
    cases = [
        ([*base, "--data-dir", str(tmp_path / "nope")], "nope: data directory not found"),
        ([*base, "--data-dir", str(malformed)], "robovqa_benchmark_qa_pairs.json: malformed JSON at line 1"),
        ([*base, "--data-dir", str(escaping)], "escapes the data directory"),
        (["eval", "robovq", "--data-dir", str(robovqa_dir), "--model", str(scripted)],
         "unknown benchmark 'robovq' — did you mean 'robovqa'?"),
        (["eval", "robovqa", "--data-dir", str(robovqa_dir), "--model", str(no_weights)],
         "has no weights"),
        ([*base, "--data-dir", str(robovqa_dir), "--set", "generation.temprature=1"], "did you mean 'temperature'"),
        ([*base, "--data-dir", str(robovqa_dir), "--seeds", "0,x"], "--seeds '0,x': expected seeds like 0,1,2"),
        ([*base, "--data-dir", str(robovqa_dir), "--seeds", "0-2,1"], "expected one or more distinct seeds"),
        ([*base, "--data-dir", str(robovqa_dir), "--set", "evaluation.seeds=[]"], "evaluation.seeds"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before


# ---- the vllm backend: same frames, same prompts, same greedy answers as hf -----------------------------------
@pytest.mark.vllm
def test_vllm_and_hf_greedy_answers_agree(vllm_engine, tiny_model_dir, synth_data_dir, tmp_path):
    from reasonkit.config import EvalConfig, load_config, preset_path
    from reasonkit.evaluate.runner import run_eval

    vllm_engine.push_weights(tiny_model_dir)  # another test may have pushed other weights into the shared engine
    outputs = {}
    for name, backend in (("hf", None), ("vllm", vllm_engine)):
        cfg = load_config(EvalConfig, preset_path("synthphys"), [
            f"model.model_name={tiny_model_dir}", f"model.backend={name}", f"data_dir={synth_data_dir}",
            f"results_dir={tmp_path / name}", "evaluation.limit=8", "generation.max_tokens=12",
            "generation.max_retries=0", "generation.temperature=0"])
        (store,) = run_eval(cfg, backend=backend, progress=False)
        outputs[name] = {r["id"]: r for r in store.records()}
    assert outputs["hf"].keys() == outputs["vllm"].keys() and len(outputs["hf"]) == 8
    for rid, hf in outputs["hf"].items():
        vl = outputs["vllm"][rid]
        assert vl["frame_timestamps"] == hf["frame_timestamps"] and vl["prompt_hash"] == hf["prompt_hash"]
        assert vl["output"] == hf["output"], rid


@pytest.mark.vllm
def test_vllm_seeded_sampling_survives_a_batch_over_the_token_budget(vllm_engine):
    """16 seeded prompts of ~590 tokens: 9,400 prompt tokens, over vLLM's CPU budget of 4,096 per step. With chunked
    prefill the engine died rewinding a CPU generator (a GRPO step of 8 x 8 rollouts hit it); seeds still reproduce."""
    from reasonkit.types import GenRequest

    text = " ".join(["the red ball moves left while the blue cube stays"] * 40)
    requests = [GenRequest(messages=[{"role": "user", "content": [{"type": "text", "text": f"{i} {text}"}]}],
                           max_tokens=4, temperature=1.0, seed=100 + i) for i in range(16)]
    first, again = vllm_engine.generate(requests), vllm_engine.generate(requests)
    assert sum(r.prompt_tokens for r in first) > 4096
    assert [r.token_ids for r in first] == [r.token_ids for r in again]
    assert len({tuple(r.token_ids[0]) for r in first}) > 1  # sampled, not one greedy answer


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
def test_infer_streams_an_answer(family, request, synth_data_dir):
    import io

    from reasonkit.evaluate.infer import run_infer

    model = request.getfixturevalue("tiny_model_dir" if family == "qwen2.5-vl" else "tiny_qwen3_dir")
    clip = next((synth_data_dir / "benchmark" / "synthphys" / "clips").glob("*.mp4"))
    from reasonkit.backends.hf import HFBackend
    from reasonkit.errors import ReasonkitError
    from reasonkit.families import detect_family, frame_spec_for
    from reasonkit.media import load_frames
    from reasonkit.prompts import free_form_messages
    from reasonkit.types import GenRequest

    question = "Which way does it move?"
    frames = load_frames(clip, frame_spec_for(FrameSpec(fps=4.0), detect_family(str(model))))
    request = GenRequest(messages=free_form_messages(question, with_video=True), frames=frames, max_tokens=24,
                         temperature=0.0, seed=0)
    expected = HFBackend(str(model)).generate([request])[0].texts[0]  # not streamed
    for engine in ("reasonkit", "generate"):
        out = io.StringIO()
        text = run_infer(model=str(model), video=clip, prompt=question, max_tokens=24, temperature=0.0, fps=4.0,
                         engine=engine, out=out)
        assert text == expected and out.getvalue().startswith(text)
    with pytest.raises(ReasonkitError, match="--engine 'vllm'"):
        run_infer(model=str(model), video=clip, prompt=question, max_tokens=4, temperature=0.0, fps=4.0,
                  engine="vllm")


# ---- a plugin benchmark without a preset ----------------------------------------------------------------------
class _DeclaredDefaults:
    name = "declared"
    frame_spec = FrameSpec()
    eval_defaults = {"generation": {"max_tokens": 64, "max_retries": 1}, "evaluation": {"answer_type": "letter"}}

    def load(self, data_dir):
        return []


class _NoDefaults:
    name = "bare"
    frame_spec = FrameSpec()

    def load(self, data_dir):
        return []


class _DefaultsPlugin:
    @hookimpl
    def reasonkit_register_benchmarks(self, register):
        register("declared", _DeclaredDefaults)
        register("bare", _NoDefaults)


def test_a_benchmark_without_a_preset_uses_its_declared_defaults_or_says_it_has_none(fresh_plugins, capsys):
    from reasonkit.evaluate.runner import resolve_config

    fresh_plugins.reset_plugins(build_plugins(extra=[("defaults", _DefaultsPlugin())]))
    cfg = resolve_config(["declared"], None, ["generation.max_retries=3"])
    assert (cfg.generation.max_tokens, cfg.generation.max_retries) == (64, 3)  # --set still wins
    assert cfg.evaluation.answer_type == "letter" and "note:" not in capsys.readouterr().err
    cfg = resolve_config(["bare"], None, [])
    assert cfg.generation.max_tokens == 1024
    err = capsys.readouterr().err
    assert "benchmark 'bare' has no preset" in err and "max_retries 10, max_tokens 1024" in err
    cfg = resolve_config(["robovqa"], None, [])  # a shipped preset: no note
    assert "note:" not in capsys.readouterr().err


def test_a_backend_refuses_options_it_does_not_take(tiny_model_dir, robovqa_dir, tmp_path, capsys):
    base = ["eval", "robovqa", "--model", str(tiny_model_dir), "--data-dir", str(robovqa_dir), "--results-dir",
            str(tmp_path / "r")]
    assert cli.main([*base, "--set", "model.tp_size=2"]) == 2  # hf has no tensor parallelism: refused, not dropped
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model.tp_size=2: the hf backend holds one whole model per process")
    assert cli.main([*base, "--set", "model.base_url=http://127.0.0.1:1/v1"]) == 2
    assert "model.base_url: backend 'hf'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written
