"""Eval throughput (samples/s): reasonkit's `hf` backend through the eval runner against a plain transformers
`generate` loop over the same samples, prompts and frames, in the same process.

Both sides: same model, greedy, same max_tokens, same batch size, frames decoded by the same code (the baseline
decodes inside its loop; reasonkit overlaps decoding of the next batch with generation).

Usage: .venv/bin/python bench/bench_eval_throughput.py [--n 48] [--batch-size 8] [--max-tokens 32]
       (builds a tiny model and synthphys data in a temp folder unless --model/--data-dir are given)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def plain_loop(model_dir: str, samples, spec, batch_size: int, max_tokens: int) -> float:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from reasonkit.media import load_frames
    from reasonkit.prompts import build_messages

    processor = AutoProcessor.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    start = time.perf_counter()
    for i in range(0, len(samples), batch_size):
        batch = samples[i:i + batch_size]
        frames = [load_frames(s.video, spec) for s in batch]
        texts = [processor.apply_chat_template(build_messages(s, "reasoning"), add_generation_prompt=True,
                                               tokenize=False) for s in batch]
        inputs = processor(text=texts, videos=[f.array for f in frames], padding=True, return_tensors="pt",
                           video_metadata=[f.metadata() for f in frames], do_sample_frames=False)
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    return len(samples) / (time.perf_counter() - start)


def reasonkit_run(model_dir: str, data_dir: str, n: int, batch_size: int, max_tokens: int, results: str) -> float:
    from reasonkit.config import EvalConfig, load_config, preset_path
    from reasonkit.evaluate.runner import run_eval

    cfg = load_config(EvalConfig, preset_path("synthphys"), [
        f"model.model_name={model_dir}", f"data_dir={data_dir}", f"results_dir={results}",
        f"evaluation.limit={n}", f"evaluation.batch_size={batch_size}", f"generation.max_tokens={max_tokens}",
        "generation.max_retries=0", "evaluation.resume=false"])
    from reasonkit.plugins import get_backend_factory

    backend = get_backend_factory("hf")(model_dir, dtype="float32")  # loaded outside the timed region, as above
    start = time.perf_counter()
    run_eval(cfg, backend=backend, progress=False)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--data-dir")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rk-bench-"))
    model, data = args.model, args.data_dir
    if model is None:
        from reasonkit.synth.model import build_tiny_model

        model = str(build_tiny_model(tmp / "model", size="tiny"))
    if data is None:
        from reasonkit.synth.benchmark import build_benchmark

        data = str(tmp / "data")
        build_benchmark(data, n=args.n, train_n=0, seed=0)
    from reasonkit.plugins import get_benchmark

    bench = get_benchmark("synthphys")
    samples = bench.load(Path(data))[: args.n]
    plain, ours = [], []
    for r in range(args.rounds):  # alternate to share machine-load drift
        plain.append(plain_loop(model, samples, bench.frame_spec, args.batch_size, args.max_tokens))
        ours.append(reasonkit_run(model, data, args.n, args.batch_size, args.max_tokens, str(tmp / f"res{r}")))
    p, o = max(plain), max(ours)
    print(f"samples {args.n}, batch {args.batch_size}, max_tokens {args.max_tokens}, rounds {args.rounds} (best)")
    print(f"plain transformers loop  {p:7.2f} samples/s   {plain}")
    print(f"reasonkit eval (hf)      {o:7.2f} samples/s   {ours}")
    print(f"ratio reasonkit/plain    {o / p:.2f}x")


if __name__ == "__main__":
    main()
