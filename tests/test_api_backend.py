"""The `openai` backend against a real local HTTP server that injects faults (429, 5xx, slow replies, malformed
bodies): retries, Retry-After, timeouts, bounded attempts, concurrency and pacing; and `reasonkit eval
--backend openai` end to end: failed requests become error records, --retry-errors replaces them, usage and cost
reach the manifest and `score`, the API key is never written. (The `vllm serve` tests are in
test_api_vllm_serve.py.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from fault_server import FaultServer
from helpers import make_upstream_benchmark

from reasonkit import cli
from reasonkit.backends.openai import OpenAIBackend
from reasonkit.evaluate.store import find_stores
from reasonkit.types import Frames, GenRequest


def text_request(marker: str, **kw) -> GenRequest:
    return GenRequest(messages=[{"role": "system", "content": [{"type": "text", "text": "Answer the questions."}]},
                                {"role": "user", "content": [{"type": "text", "text": marker}]}], **kw)


def backend(server: FaultServer, **kw) -> OpenAIBackend:
    options = {"base_url": server.base_url, "timeout_s": 5.0, "backoff_base_s": 0.05, **kw}
    return OpenAIBackend("fault-model", **options)


@pytest.fixture
def server():
    with FaultServer() as srv:
        yield srv


def test_retries_honour_retry_after_and_recover_from_faults(server):
    server.script("q429", "429", "429", "ok")
    server.script("qdate", "429-date", "ok")
    server.script("q5xx", "500", "503", "ok")
    server.script("qbad", "malformed", "nochoices", "ok")
    server.script("qslow", "slow", "ok")
    start = time.monotonic()
    results = backend(server, timeout_s=0.5).generate(
        [text_request(m, max_tokens=7) for m in ("q429", "qdate", "q5xx", "qbad", "qslow", "qplain")])
    assert [r.error for r in results] == [None] * 6 and {r.texts[0] for r in results} == {"<answer>A</answer>"}
    assert server.attempts == {"q429": 3, "qdate": 2, "q5xx": 3, "qbad": 3, "qslow": 2, "": 1}
    gaps = np.diff(server.times["q429"])
    assert (gaps >= 0.2).all()  # Retry-After: 0.2 s was waited each time
    assert server.times["qdate"][1] - server.times["qdate"][0] >= 0.9  # an HTTP-date Retry-After
    assert 0.45 <= server.times["qslow"][1] - server.times["qslow"][0] < 1.5  # gave up at the 0.5 s timeout
    assert results[0].prompt_tokens == 100 and results[0].completion_tokens == 5
    assert time.monotonic() - start < 8  # the slowest: the HTTP-date wait (<= 2 s)
    body = server.bodies[-1]
    assert body["max_completion_tokens"] == 7 and body["temperature"] == 0.0 and "top_p" not in body  # greedy


def test_a_request_that_keeps_failing_is_an_error_result_after_bounded_attempts(server):
    server.script("always500", "500")
    server.script("refused", "400")
    server.script("wait-too-long", "429")
    server.retry_after = 5.0
    results = backend(server, request_retries=2, retry_max_wait_s=1.0).generate(
        [text_request("always500"), text_request("refused"), text_request("wait-too-long"), text_request("fine")])
    assert server.attempts["always500"] == 3 and server.attempts["refused"] == 1
    assert server.attempts["wait-too-long"] == 1  # Retry-After 5 s is over the 1 s bound: no pointless wait
    assert results[0].error.startswith("API request failed: HTTP 500") and "after 3 attempts" in results[0].error
    assert results[1].error.startswith("API request refused: HTTP 400")
    assert results[2].error.startswith("API request failed: HTTP 429")
    assert results[3].error is None and results[3].texts == ["<answer>A</answer>"]


def test_concurrency_is_bounded_and_requests_are_paced(server):
    server.answer, server.slow_s = "<answer>B</answer>", 0.1
    for i in range(12):
        server.script(f"c{i}", "slow")  # long enough that three are surely in flight together
    many = [text_request(f"c{i}") for i in range(12)]
    assert all(r.error is None for r in backend(server, max_concurrency=3).generate(many))
    assert server.max_in_flight == 3
    server.max_in_flight = 0
    start = time.monotonic()
    backend(server, max_concurrency=8, max_requests_per_minute=600).generate([text_request(f"p{i}") for i in range(5)])
    assert time.monotonic() - start >= 0.4  # 600/min: starts 0.1 s apart


def test_frames_go_as_ordered_timestamped_images_and_options_are_mapped_or_refused(server):
    from reasonkit.errors import ConfigError

    array = np.zeros((3, 28, 56, 3), dtype=np.uint8)
    array[1, :, :, 0] = 255
    frames = Frames(array=array, fps=2.0, timestamps=[0.0, 0.5, 1.0], source_fps=8.0, source_frames=9,
                    duration=1.125, indices=[0, 4, 8])
    request = GenRequest(messages=[{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q?"}]}],
                         frames=frames, temperature=0.6, top_p=0.95, seed=3, presence_penalty=0.5)
    backend(server, image_format="png").generate([request])
    (body,) = server.bodies
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"] * 3 + ["text"]
    assert [p["text"] for p in parts[0:6:2]] == ["<0.0 seconds>", "<0.5 seconds>", "<1.0 seconds>"]
    import base64
    import io

    from PIL import Image

    decoded = [np.asarray(Image.open(io.BytesIO(base64.b64decode(p["image_url"]["url"].split(",", 1)[1]))))
               for p in parts[1:6:2]]
    assert all((d == a).all() for d, a in zip(decoded, array))  # png: lossless, in order
    assert (body["temperature"], body["top_p"], body["seed"], body["presence_penalty"]) == (0.6, 0.95, 3, 0.5)
    with pytest.raises(ConfigError, match="generation.top_k=20: the OpenAI Chat Completions API has no top_k"):
        backend(server).generate([text_request("x", top_k=20)])
    with pytest.raises(ConfigError, match="repetition_penalty"):
        backend(server).generate([text_request("x", repetition_penalty=1.1)])
    with pytest.raises(ConfigError, match="frames_as=video"):
        backend(server, frames_as="video")
    server.bodies.clear()
    backend(server, api_dialect="vllm").generate([text_request("x", top_k=20, repetition_penalty=1.1)])
    assert (server.bodies[0]["top_k"], server.bodies[0]["repetition_penalty"]) == (20, 1.1)  # vLLM's extra body
    assert server.bodies[0]["max_tokens"] == 1024


# ---- reasonkit eval --backend openai, end to end ----------------------------------------------------------------
@pytest.fixture(scope="module")
def six_questions(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("api-data")
    entries = [{"video": f"clips/c{i}.mp4", "qa_pairs": [
        {"question": f"Q{i}-{j}?", "index2ans": {"A": "yes", "B": "no"}, "answer": "AB"[j % 2]} for j in range(2)]}
        for i in range(3)]
    make_upstream_benchmark(data, "robovqa", entries, {f"clips/c{i}.mp4": 8 for i in range(3)})
    return data


def test_eval_records_failed_requests_and_retry_errors_replaces_them(six_questions, tmp_path, monkeypatch, capsys):
    key = "sk-test-0123456789abcdef-secret"
    monkeypatch.setenv("RK_TEST_KEY", key)
    results = tmp_path / "results"
    with FaultServer(api_key=key) as server:
        server.script("Q1-0?", "500")
        server.script("Q2-1?", "429", "ok")
        server.retry_after = 0.05
        args = ["eval", "robovqa", "--model", "gpt-test", "--backend", "openai", "--data-dir", str(six_questions),
                "--results-dir", str(results), "--batch-size", "6", "--set", f"model.base_url={server.base_url}",
                "--set", "model.api_key_env=RK_TEST_KEY", "--set", "model.request_retries=1",
                "--set", "model.price_input_per_mtok=2.5", "--set", "model.price_output_per_mtok=10",
                "--set", "generation.max_retries=0"]
        assert cli.main(args) == 3  # finished, one question could not be asked
        err = capsys.readouterr().err
        assert "error records: 1 question(s): API request failed: HTTP 500" in err and "--retry-errors" in err
        (store,) = find_stores(results)
        recs = {r["id"]: r for r in store.records()}
        assert len(recs) == 6
        (failed,) = [r for r in recs.values() if r["status"] == "error"]
        assert "Q1-0" not in failed["error"] and "after 2 attempts" in failed["error"]
        assert all(r["status"] == "ok" and r["extracted"] == "A" for r in recs.values() if r is not failed)
        assert server.attempts["Q2-1?"] == 2 and server.attempts["Q1-0?"] == 2 and server.bad_keys == 0
        usage = store.manifest()["usage"]
        assert usage == {"prompt_tokens": 500, "completion_tokens": 25, "requests": 5,
                         "cost_usd": pytest.approx((500 * 2.5 + 25 * 10) / 1e6)}
        server.script("Q1-0?", "ok")  # the server recovers
        assert cli.main(args) == 3  # a plain resume keeps the error record
        assert server.attempts["Q1-0?"] == 2
        assert cli.main([*args, "--retry-errors"]) == 0
        recs = store.records()
        assert sorted(r["id"] for r in recs) == sorted({r["id"] for r in recs}) and len(recs) == 6
        assert all(r["status"] == "ok" for r in recs) and server.attempts["Q1-0?"] == 3
    capsys.readouterr()
    assert cli.main(["score", str(results), "--json"]) == 0
    (row,) = [r for r in json.loads(capsys.readouterr().out) if r["dataset"] == "robovqa"]
    assert (row["prompt_tokens"], row["completion_tokens"], row["requests"]) == (600, 30, 6)
    assert row["cost_usd"] == pytest.approx((600 * 2.5 + 30 * 10) / 1e6) and row["coverage"] == 100.0
    assert cli.main(["score", str(results)]) == 0
    assert "usage: gpt-test robovqa: 6 requests, 600 prompt + 30 completion tokens, $0.0018" in capsys.readouterr().out
    written = b"".join(p.read_bytes() for p in results.rglob("*") if p.is_file())
    assert key.encode() not in written and b"RK_TEST_KEY" in written  # the variable's name only


def test_unsupported_generation_options_are_refused_before_any_request(six_questions, tmp_path, capsys):
    with FaultServer() as server:
        rc = cli.main(["eval", "robovqa", "--model", "gpt-test", "--backend", "openai", "--data-dir",
                       str(six_questions), "--results-dir", str(tmp_path / "r"),
                       "--set", f"model.base_url={server.base_url}", "--set", "generation.top_k=20"])
        assert rc == 2 and server.bodies == []
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: generation.top_k=20") and "api_dialect=vllm" in lines[0]


def test_missing_api_key_for_the_default_endpoint_is_one_line(six_questions, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rc = cli.main(["eval", "robovqa", "--model", "gpt-4o", "--backend", "openai", "--data-dir", str(six_questions),
                   "--results-dir", str(tmp_path / "r")])
    assert rc == 2
    assert "model.api_key_env: the environment variable OPENAI_API_KEY is not set" in capsys.readouterr().err
