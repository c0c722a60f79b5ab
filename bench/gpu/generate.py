"""Generation on one GPU, in ONE process: transformers `generate` vs reasonkit's engine (reasonkit.generation) on
the same model and inputs, as plain_hf_baseline.py's `infer` and `grpo` sections lay them out.

  eval    7B shape (random weights), 16 frames of 448x448 (2,048 video tokens) + 102 text tokens, 512 new tokens,
          greedy, EOS ignored (min tokens = max tokens), batch sizes --batches: output tok/s in steady state,
          the first batch vs a steady one with the compile/capture cost reported apart, greedy-token agreement
  ragged  eval's prompts at batch 32 with budgets spread from 64 to 512 tokens: finished rows kept to the end vs
          leaving the batch into smaller buckets whose steps --compact-modes builds (same engine)
  vision  the vision tower over 32 such clips: transformers in one call vs the engine's vision cache (cold)
  grpo    3B shape, 4 prompts x 8 completions x 256 tokens (8 frames of 448x448), T = 1: one rollout, both ways
  seeds   7B shape, a real `reasonkit eval` (runner, mp4 decoding, processor, records) of 32 questions on 16 clips
          (16 frames of 448x448 each), sampled as the presets (T 0.6, top-p 0.95), --seed-tokens new tokens, batch
          32, no retries (random weights never parse): 1 seed vs --seeds 0-4 in one pass, wall time, cold (the
          process's first run of that size: compile included) and warm

  python3 bench/gpu/generate.py --sections eval,vision,grpo --batches 1,8,32 \
      [--mode reduce-overhead|compiled-graph|cuda-graph]
  python3 bench/gpu/generate.py --tiny      # CPU dry run of the plumbing (tiny shapes, eager engine)

Every measurement checks the wall-clock budget first (--budget-s; the device gives 10 min per call) and is skipped
when its estimate does not fit; results are rewritten to $OUT/generate.json after each one.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

T0 = time.perf_counter()
RESULTS: dict = {}


def log(*parts) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s]", *parts, flush=True)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, *args, **kwargs):
    sync()
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    sync()
    return time.perf_counter() - start, out


def save(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "generate.json").write_text(json.dumps(RESULTS, indent=1, default=str))


def build(shape: str, device: str):
    """A random-weight model at a public shape, in memory (reasonkit.synth.model's config and generation ids,
    without writing the folder), or the tiny CPU model."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from reasonkit.synth import model as synth
    from reasonkit.synth.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    config = synth.build_config("tiny", tokenizer) if shape == "tiny" else synth.build_shape_config(shape, tokenizer)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=torch.float32 if shape == "tiny" else torch.bfloat16, attn_implementation="sdpa")
    synth._set_generation_ids(model, tokenizer)
    return model.eval(), tokenizer


def clip_inputs(model, n: int, frames: int, size: int, seed: int):
    """n prompts laid out like the chat template ([20 text] <vision_start> <video_pad> x N <vision_end> [80 text]),
    one random-pixel clip each: (generate's batch kwargs, the engine's EncodedPrompts)."""
    from reasonkit.generation.prompts import EncodedPrompt, VideoInput

    cfg, gen = model.config, torch.Generator().manual_seed(seed)
    t, h = frames // 2, size // 14
    n_vid, patches = t * h * h // 4, t * h * h
    device = model.device
    prompts, rows, pixels = [], [], []
    for i in range(n):
        text = lambda k: torch.randint(0, 3000, (k,), generator=gen)  # noqa: E731
        ids = torch.cat([text(20), torch.tensor([cfg.vision_start_token_id]),
                         torch.full((n_vid,), cfg.video_token_id), torch.tensor([cfg.vision_end_token_id]), text(80)])
        types = (ids == cfg.video_token_id).long() * 2
        pix = torch.randn(patches, 3 * 2 * 14 * 14, generator=gen).to(device, model.dtype)
        grid = torch.tensor([t, h, h])
        prompts.append(EncodedPrompt(ids, types, [VideoInput(pix, grid, key=f"s{seed}c{i}")]))
        rows.append(ids)
        pixels.append(pix)
    ids = torch.stack(rows).to(device)
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values_videos=torch.cat(pixels),
                 video_grid_thw=torch.tensor([[t, h, h]] * n, device=device),
                 mm_token_type_ids=(ids == cfg.video_token_id).long() * 2)
    return batch, prompts


def agreement(a: list[list[int]], b: list[list[int]]) -> dict:
    equal = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    total = sum(min(len(ra), len(rb)) for ra, rb in zip(a, b))
    prefix = [next((k for k, (x, y) in enumerate(zip(ra, rb)) if x != y), min(len(ra), len(rb))) / max(1, len(ra))
              for ra, rb in zip(a, b)]
    return {"equal_tokens_pct": 100 * equal / max(1, total), "common_prefix_pct": 100 * statistics.mean(prefix)}


def teacher_forced_top1(model, batch, completions: list[list[int]], rows: int = 8) -> float:
    """Percent of completion tokens that are the argmax of one full-sequence forward (no cache, the model's own
    attention) given that completion's own prefix: how faithful a greedy decoder is to the model. Two faithful bf16
    decoders still drift apart after their first near-tie (random weights give near-flat logits), so token
    agreement between them understates faithfulness; this measure has no cascade."""
    ids, video = batch["input_ids"], batch["video_grid_thw"]
    per_row = batch["pixel_values_videos"].shape[0] // ids.shape[0]
    hits = total = 0
    with torch.inference_mode():
        for i in range(min(rows, ids.shape[0])):
            comp = torch.tensor(completions[i], device=ids.device)
            full = torch.cat([ids[i], comp])[None]
            types = torch.cat([batch["mm_token_type_ids"][i], torch.zeros_like(comp)])[None]
            out = model(input_ids=full, attention_mask=torch.ones_like(full), mm_token_type_ids=types,
                        pixel_values_videos=batch["pixel_values_videos"][i * per_row:(i + 1) * per_row],
                        video_grid_thw=video[i:i + 1], logits_to_keep=len(comp) + 1)
            hits += int((out.logits[0, :-1].argmax(-1) == comp).sum())
            total += len(comp)
    return 100 * hits / max(1, total)


def fits(estimate_s: float, args) -> bool:
    return time.perf_counter() - T0 + estimate_s < args.budget_s


def timed_prefills(engine) -> list[float]:
    """Wrap the engine's prefill (vision features + prompt forward) to record its seconds per batch (one sync
    each), so a first batch's extra time can be placed; ``del engine._prefill`` removes the wrapper."""
    seconds: list[float] = []
    method = engine._prefill

    def prefill(*args, **kwargs):
        dt, out = timed(method, *args, **kwargs)
        seconds.append(dt)
        return out
    engine._prefill = prefill
    return seconds


def sec_eval(args, device) -> None:
    from reasonkit.generation import Engine, RowSettings

    frames, size, new = (4, 56, 8) if args.tiny else (16, 448, 512)
    model, tok = build("tiny" if args.tiny else "qwen2.5-vl-7b", device)
    eos = model.generation_config.eos_token_id
    engine = Engine(model, pad_id=tok.pad_token_id, eos_ids=eos, mode=args.mode, max_batch=max(args.batches),
                    inductor_tuning=not args.no_inductor_tuning)
    res = RESULTS.setdefault("eval", {"shape": "tiny" if args.tiny else "qwen2.5-vl-7b", "frames": frames,
                                      "size": size, "new_tokens": new, "engine": engine.describe(), "batches": {}})
    greedy = dict(do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
    settings = RowSettings(max_tokens=new, min_tokens=new)  # greedy, EOS ignored (the baseline's min_new_tokens)
    for B in args.batches if "eval" in args.sections else []:
        r = res["batches"].setdefault(str(B), {})
        try:
            batch, prompts = clip_inputs(model, B, frames, size, seed=B)
            rows = [(p, settings) for p in prompts]
            with torch.inference_mode():
                r["generate_warmup_s"], _ = timed(model.generate, **batch, max_new_tokens=4, min_new_tokens=4,
                                                  **greedy)
                runs, ref = [], None
                for _ in range(args.reps):
                    if runs and not fits(runs[-1] * 1.2 + 60, args):
                        break
                    dt, out = timed(model.generate, **batch, max_new_tokens=new, min_new_tokens=new, **greedy)
                    runs.append(dt)
                    ref = out[:, batch["input_ids"].shape[1]:].tolist()
            r["generate_s"] = statistics.median(runs)
            r["generate_tok_s"] = B * new / r["generate_s"]
            log(f"eval B={B}: generate {r['generate_s']:.2f}s = {r['generate_tok_s']:.0f} tok/s")
            save(args.out)
            if not fits(60 + 2 * r["generate_s"], args):
                r["note"] = "engine skipped: budget"
                continue
            r["engine_warmup_s"] = engine.warm_up(B, prompts[0].length, settings)  # compile + capture, once
            engine.vision.clear()
            prefills = timed_prefills(engine)
            r["engine_first_s"], outs = timed(engine.generate, rows)
            r["engine_first_prefill_s"] = sum(prefills)  # vision tower + language-model prefill
            prefills.clear()
            steady = []
            for _ in range(args.reps):
                if steady and not fits(steady[-1] * 1.5 + 30, args):
                    break
                engine.vision.clear()  # each rep pays its vision tower, as generate does
                dt, outs = timed(engine.generate, rows)
                steady.append(dt)
            r["engine_s"] = statistics.median(steady) if steady else r["engine_first_s"]
            r["engine_prefill_s"] = sum(prefills) / max(1, len(steady))
            del engine._prefill  # back to the method
            r["engine_tok_s"] = B * new / r["engine_s"]
            r["engine_warm_vision_s"], _ = timed(engine.generate, rows)  # features cached: what a 2nd seed pays
            r["first_over_steady"] = r["engine_first_s"] / r["engine_s"]
            r["speedup"] = r["engine_tok_s"] / r["generate_tok_s"]
            r.update(agreement(ref, [o.token_ids for o in outs]))
            if fits(30, args):
                r["teacher_forced_top1_generate_pct"] = teacher_forced_top1(model, batch, ref)
                r["teacher_forced_top1_engine_pct"] = teacher_forced_top1(model, batch, [o.token_ids for o in outs])
            r["engine_mode"] = engine.mode
            r["full_length"] = all(len(o.token_ids) == new for o in outs)  # EOS ignored, as generate's min tokens
            log(f"eval B={B}: engine {r['engine_s']:.2f}s = {r['engine_tok_s']:.0f} tok/s ({r['speedup']:.2f}x), "
                f"warm-up {r['engine_warmup_s']:.1f}s, first/steady {r['first_over_steady']:.2f} (prefill "
                f"{r['engine_first_prefill_s']:.2f}s vs {r['engine_prefill_s']:.2f}s), "
                f"greedy equal {r['equal_tokens_pct']:.1f}%, teacher-forced top-1 generate "
                f"{r.get('teacher_forced_top1_generate_pct', float('nan')):.1f}% engine "
                f"{r.get('teacher_forced_top1_engine_pct', float('nan')):.1f}%, mode {engine.mode}")
        except Exception as exc:  # noqa: BLE001 - record and go on to the next size
            r["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
            log(f"eval B={B} failed: {r['error']}")
        save(args.out)
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    if "ragged" in args.sections:
        sec_ragged(args, model, engine, frames, size, new)
    res["warmup_s"] = engine.warmup_s
    if args.profile and "eval" in args.sections and fits(60, args):
        batch, prompts = clip_inputs(model, args.batches[-1], frames, size, seed=args.batches[-1])
        profile_decode(engine, [(p, RowSettings(max_tokens=32, min_tokens=32)) for p in prompts], args.out)
    if "vision" in args.sections and fits(30, args):
        sec_vision(args, model, engine, frames, size)
    engine.release()
    del model, engine
    gc.collect()


def sec_ragged(args, model, engine, frames, size, new) -> None:
    """32 rows whose budgets spread evenly from new/8 to new tokens (EOS ignored), as answers of varied length
    finish: the engine with finished rows leaving the batch vs the same engine keeping every slot to the end."""
    from reasonkit.generation import RowSettings

    B = 32
    budgets = [new // 8 + (new - new // 8) * i // (B - 1) for i in range(B)]
    _, prompts = clip_inputs(model, B, frames, size, seed=B)
    rows = [(p, RowSettings(max_tokens=m, min_tokens=m)) for p, m in zip(prompts, budgets)]
    r = RESULTS.setdefault("ragged", {"rows": B, "budgets": [budgets[0], budgets[-1]], "tokens": sum(budgets)})
    engine.warm_up(B, prompts[0].length, RowSettings(max_tokens=new, min_tokens=new))
    saved = engine.compact_min_steps, engine.compact_mode
    try:
        for mode in ["kept"] + args.compact_modes.split(","):
            label = mode if mode == "kept" else f"leaving-{mode}"
            if mode != "kept" and not fits(60 + 3 * r["kept_s"] + (240 if mode == "reduce-overhead" else 60), args):
                r[f"{label}_note"] = "skipped: budget"
                continue
            engine.compact_min_steps = 10**9 if mode == "kept" else saved[0]
            engine.compact_mode = saved[1] if mode == "kept" else mode
            before = set(engine.warmup_s)
            engine.vision.clear()
            r[f"{label}_first_s"], outs = timed(engine.generate, rows)  # "leaving": builds the smaller buckets' steps
            runs = []
            for _ in range(args.reps):
                engine.vision.clear()
                runs.append(timed(engine.generate, rows)[0])
            r[f"{label}_s"] = statistics.median(runs)
            r[f"{label}_tok_s"] = sum(budgets) / r[f"{label}_s"]
            assert [len(o.token_ids) for o in outs] == budgets
            r[f"{label}_warmup_s"] = {k: v for k, v in engine.warmup_s.items() if k not in before}
            log(f"ragged {label}: {r[f'{label}_s']:.2f}s = {r[f'{label}_tok_s']:.0f} tok/s "
                f"(first {r[f'{label}_first_s']:.2f}s)")
            if mode != "kept":
                r[f"speedup_{mode}"] = r["kept_s"] / r[f"{label}_s"]
                log(f"ragged: finished rows leaving the batch ({mode} steps) {r[f'speedup_{mode}']:.2f}x faster; "
                    f"their buckets' warm-up {sum(r[f'{label}_warmup_s'].values()):.1f}s")
            save(args.out)
    except Exception as exc:  # noqa: BLE001
        r["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        log(f"ragged failed: {r['error']}")
    finally:
        engine.compact_min_steps, engine.compact_mode = saved
    save(args.out)


def sec_vision(args, model, engine, frames, size) -> None:
    n = 4 if args.tiny else 32
    batch, prompts = clip_inputs(model, n, frames, size, seed=999)
    r = RESULTS.setdefault("vision", {"clips": n})
    with torch.inference_mode():
        one = batch["pixel_values_videos"].shape[0] // n
        timed(model.model.get_video_features, batch["pixel_values_videos"][:one], batch["video_grid_thw"][:1])
        r["transformers_s"], _ = timed(model.model.get_video_features, batch["pixel_values_videos"],
                                       batch["video_grid_thw"])
        engine.vision.clear()
        r["engine_cold_s"], _ = timed(engine.vision.features, [v for p in prompts for v in p.videos])
        r["engine_cached_s"], _ = timed(engine.vision.features, [v for p in prompts for v in p.videos])
    log(f"vision {n} clips: transformers {r['transformers_s']:.2f}s, engine cold {r['engine_cold_s']:.2f}s, "
        f"cached {r['engine_cached_s'] * 1e3:.1f} ms")
    save(args.out)


def sec_grpo(args, device) -> None:
    from reasonkit.generation import Engine, RowSettings
    from reasonkit.generation.sampling import row_seed

    frames, size, new = (2, 56, 8) if args.tiny else (8, 448, 256)
    model, tok = build("tiny" if args.tiny else "qwen2.5-vl-3b", device)
    engine = Engine(model, pad_id=tok.pad_token_id, eos_ids=model.generation_config.eos_token_id, mode=args.mode,
                    inductor_tuning=not args.no_inductor_tuning)
    r = RESULTS.setdefault("grpo", {"shape": "tiny" if args.tiny else "qwen2.5-vl-3b", "prompts": 4,
                                    "completions": 8, "new_tokens": new})
    batch, prompts = clip_inputs(model, 4, frames, size, seed=7)
    kw = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=8, max_new_tokens=new,
              min_new_tokens=new, pad_token_id=tok.pad_token_id)
    rows = [(p, RowSettings(max_tokens=new, min_tokens=new, temperature=1.0, seed=row_seed(i, j)))
            for i, p in enumerate(prompts) for j in range(8)]
    try:
        with torch.inference_mode():
            timed(model.generate, **batch, **kw)  # the first long generate pays the allocator's growth
            gen = [timed(model.generate, **batch, **kw)[0] for _ in range(args.reps)]
        r["generate_s"] = statistics.median(gen)
        log(f"grpo rollout: generate {r['generate_s']:.2f}s")
        save(args.out)
        r["engine_warmup_s"] = engine.warm_up(32, prompts[0].length, rows[0][1])
        runs = []
        for _ in range(args.reps + 1):  # the first: allocator growth, as for generate
            engine.vision.clear()  # a GRPO step trains the tower: features are recomputed every rollout
            runs.append(timed(engine.generate, rows)[0])
        r["engine_first_s"], r["engine_s"] = runs[0], statistics.median(runs[1:])
        r["full_length"] = all(len(o.token_ids) == new for o in engine.generate(rows[:8]))
        r["speedup"] = r["generate_s"] / r["engine_s"]
        log(f"grpo rollout: engine {r['engine_s']:.2f}s ({r['speedup']:.2f}x), warm-up {r['engine_warmup_s']:.1f}s")
    except Exception as exc:  # noqa: BLE001
        r["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        log(f"grpo failed: {r['error']}")
    save(args.out)


def write_benchmark(root: Path, clips: int, per_clip: int, size: int, seconds: int = 4) -> Path:
    """An upstream-layout robovqa of ``clips`` mp4s (size x size, 8 fps, a moving bar over noise) with
    ``per_clip`` questions each."""
    import av
    import numpy as np

    bench = root / "benchmark" / "robovqa"
    (bench / "clips").mkdir(parents=True, exist_ok=True)
    entries = []
    for c in range(clips):
        rng = np.random.default_rng(c)
        base = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
        with av.open(str(bench / "clips" / f"c{c}.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=8)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
            for i in range(8 * seconds):
                frame = base.copy()
                x = (i * size) // (8 * seconds)
                frame[:, x:x + size // 16] = 255
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        entries.append({"video": f"clips/c{c}.mp4", "qa_pairs": [
            {"question": f"Question {q} about clip {c}: which way does the bar move?",
             "index2ans": {"A": "left", "B": "right"}, "answer": "B"} for q in range(per_clip)]})
    (bench / "robovqa_benchmark_qa_pairs.json").write_text(json.dumps(entries))
    return root


def sec_seeds(args, device) -> None:
    from reasonkit.backends.hf import HFBackend
    from reasonkit.config import EvalConfig, load_config
    from reasonkit.evaluate.runner import run_eval
    from reasonkit.synth.model import build_processor

    tiny = args.tiny
    shape = "tiny" if tiny else "qwen2.5-vl-7b"
    size, new, clips = (56, 8, 4) if tiny else (448, args.seed_tokens, 16)
    model, tok = build(shape, device)
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="rk-seeds-"))
    folder = work / "model"  # names the run (result paths, fingerprint, family); the weights stay in memory
    model.config.save_pretrained(folder)
    build_processor(tok).save_pretrained(folder)
    from safetensors.torch import save_file

    save_file({"lm_head.weight": model.lm_head.weight[:8].contiguous().cpu()}, str(folder / "model.safetensors"))
    data = write_benchmark(work / "data", clips, 2, size)
    backend = HFBackend.from_model(model, build_processor(tok))
    r = RESULTS.setdefault("seeds", {"shape": shape, "questions": 2 * clips, "clips": clips, "new_tokens": new,
                                     "frames": 16, "size": size, "runs": {}})

    def run(label: str, seeds: str) -> None:
        engine = getattr(backend, "_generation_engine", None)  # one engine for all runs: "cold" = first of a size
        if engine is not None:
            engine.vision.clear()  # every run pays its own vision tower
        cfg = load_config(EvalConfig, None, [
            f"model.model_name={folder}", f"data_dir={data}", f"results_dir={work / label}",
            "evaluation.batch_size=32", "evaluation.answer_type=reasoning", f"generation.max_tokens={new}",
            "generation.max_retries=0", "generation.temperature=0.6", "generation.top_p=0.95", seeds,
            "frames.fps=4", "frames.min_frames=16", "frames.max_frames=16", f"frames.min_pixels={size * size}",
            f"frames.max_pixels={size * size}"], base={"datasets": ["robovqa"]})
        dt, stores = timed(run_eval, cfg, backend=backend, progress=False)
        records = sum(len(s.records()) for s in stores)
        tokens = sum(rec["output_tokens"] for s in stores for rec in s.records())
        r["runs"][label] = {"s": dt, "records": records, "output_tokens": tokens, "tok_s": tokens / dt}
        log(f"seeds {label}: {dt:.1f}s, {records} records, {tokens / dt:.0f} output tok/s")
        save(args.out)

    try:
        for label, seeds in (("cold-1seed", "evaluation.seed=0"), ("cold-5seeds", "evaluation.seeds=[0,1,2,3,4]"),
                             ("warm-1seed", "evaluation.seed=0"), ("warm-5seeds", "evaluation.seeds=[0,1,2,3,4]")):
            if r["runs"] and not fits(3 * max(x["s"] for x in r["runs"].values()), args):
                r["note"] = f"{label} skipped: budget"
                break
            run(label, seeds)
        runs = r["runs"]
        if "warm-5seeds" in runs:
            r["warm_ratio"] = runs["warm-5seeds"]["s"] / runs["warm-1seed"]["s"]
        if "cold-5seeds" in runs:
            r["cold_ratio"] = runs["cold-5seeds"]["s"] / runs["cold-1seed"]["s"]
        r["warmup_s"] = backend._generation_engine.warmup_s
        log(f"seeds: 5 seeds / 1 seed = {r.get('warm_ratio', float('nan')):.2f} warm, "
            f"{r.get('cold_ratio', float('nan')):.2f} cold (each size's compile in its first run)")
    except Exception as exc:  # noqa: BLE001
        r["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
        log(f"seeds failed: {r['error']}")
    save(args.out)
    backend.close()
    gc.collect()


def profile_decode(engine, rows, out: Path) -> None:
    """The CUDA kernels of one batch on an already warm bucket (torch.profiler), top 20 by time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        engine.generate(rows)
        sync()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=90)
    (out / "profile_decode.txt").write_text(table)
    print(table, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="eval,vision,grpo")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--mode", default="auto",
                    help="engine decode step: auto, compiled-graph, reduce-overhead, dynamic, cuda-graph, eager")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=560)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--seed-tokens", type=int, default=512, help="seeds section: new tokens per answer")
    ap.add_argument("--compact-modes", default="cuda-graph",
                    help="ragged: how the buckets rows move into get their step (cuda-graph, dynamic, reduce-overhead)")
    ap.add_argument("--no-inductor-tuning", action="store_true",
                    help="compile the decode step without inductor's coordinate-descent tuning (the engine's default)")
    ap.add_argument("--profile", action="store_true", help="eval: profile the decode of the last batch size")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/bench-out")))
    args = ap.parse_args()
    args.sections = args.sections.split(",")
    args.batches = [int(b) for b in args.batches.split(",")]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.tiny:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    import transformers

    RESULTS["env"] = {"torch": torch.__version__, "transformers": transformers.__version__, "device": device,
                      "gpu": torch.cuda.get_device_name() if device == "cuda" else None, "args": vars(args)}
    if {"eval", "vision", "ragged"} & set(args.sections):
        sec_eval(args, device)
    if "grpo" in args.sections and fits(120 if not args.tiny else 5, args):
        sec_grpo(args, device)
    if "seeds" in args.sections and fits(120 if not args.tiny else 5, args):
        sec_seeds(args, device)
    save(args.out)
    summary(args.out)


def summary(out: Path) -> None:
    print("\n== generation bench (tok/s: output tokens per second; x: engine over generate)")
    for B, r in RESULTS.get("eval", {}).get("batches", {}).items():
        print(f"eval B={B:>3}: generate {r.get('generate_tok_s', 0):7.0f}  engine {r.get('engine_tok_s', 0):7.0f} "
              f"({r.get('speedup', 0):.2f}x)  first/steady {r.get('first_over_steady', 0):.2f}  warm-up "
              f"{r.get('engine_warmup_s', 0):.1f}s  equal {r.get('equal_tokens_pct', 0):.1f}%  {r.get('error', '')}")
    g = RESULTS.get("ragged", {})
    for key in [k for k in g if k.startswith("speedup_")]:
        print(f"ragged B=32: rows kept {g['kept_tok_s']:.0f} tok/s, leaving ({key[8:]} steps) "
              f"{g[f'leaving-{key[8:]}_tok_s']:.0f} tok/s ({g[key]:.2f}x)")
    v = RESULTS.get("vision")
    if v:
        print(f"vision {v['clips']} clips: transformers {v['transformers_s']:.2f}s  engine {v['engine_cold_s']:.2f}s")
    sd = RESULTS.get("seeds")
    if sd:
        print("seeds: " + "  ".join(f"{k} {v['s']:.1f}s" for k, v in sd["runs"].items())
              + f"  5/1 warm {sd.get('warm_ratio', 0):.2f} cold {sd.get('cold_ratio', 0):.2f} {sd.get('error', '')}")
    g = RESULTS.get("grpo")
    if g:
        print(f"grpo rollout 4x8x{g['new_tokens']}: generate {g.get('generate_s', 0):.2f}s  engine "
              f"{g.get('engine_s', 0):.2f}s ({g.get('speedup', 0):.2f}x)  {g.get('error', '')}")
    print(f"json: {out / 'generate.json'}")


if __name__ == "__main__":
    sys.exit(main())
