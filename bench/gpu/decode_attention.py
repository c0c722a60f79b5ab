"""One decode step's attention at the 7B shape (28 query heads, 4 K/V heads, head dim 128) over a static cache,
kernel variants side by side: time per layer inside a CUDA graph of 28 calls, and the error against fp32.

  sdpa            what the engine ships: query heads folded into the query axis, additive mask, SDPA's own pick
  sdpa-efficient  the same, SDPA restricted to the memory-efficient kernel
  sdpa-cudnn      the same, restricted to cuDNN
  bmm             q @ k^T with fp32 scores (bmm out_dtype), masked softmax in fp32, probs @ v (cuBLAS + one
                  fused softmax: split over the cache length, not one block per K/V head)
  bmm-compiled    bmm under torch.compile (the engine compiles its step)

  python3 bench/gpu/decode_attention.py --batches 1,8,32 --cache 2688 --valid 2400
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

HEADS, KV_HEADS, DIM, LAYERS = 28, 4, 128, 28


def sdpa(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=DIM ** -0.5)


def bmm(q, k, v, mask):
    b, h, g, d = q.shape
    scores = torch.bmm(q.reshape(b * h, g, d), k.reshape(b * h, -1, d).transpose(1, 2), out_dtype=torch.float32)
    scores = scores.view(b, h, g, -1) * DIM ** -0.5 + mask
    probs = scores.softmax(-1).to(v.dtype)
    return torch.matmul(probs, v)


def variants():
    def restricted(backend):
        def run(q, k, v, mask):
            with sdpa_kernel([backend]):
                return sdpa(q, k, v, mask)
        return run
    return {"sdpa": sdpa, "sdpa-efficient": restricted(SDPBackend.EFFICIENT_ATTENTION),
            "sdpa-cudnn": restricted(SDPBackend.CUDNN_ATTENTION), "bmm": bmm,
            "bmm-compiled": torch.compile(bmm, fullgraph=True)}


def measure(fn, q, ks, vs, mask, reps: int) -> float:
    def layers():
        return [fn(q, k, v, mask) for k, v in zip(ks, vs)]
    for _ in range(3):
        layers()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        layers()
    graph.replay()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        graph.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / reps / LAYERS * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,8,16,32")
    ap.add_argument("--cache", type=int, default=2688)
    ap.add_argument("--valid", type=int, default=2400)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/bench-out")))
    args = ap.parse_args()
    torch.manual_seed(0)
    dev, dt = "cuda", torch.bfloat16
    results = {}
    for batch in map(int, args.batches.split(",")):
        q = torch.randn(batch, KV_HEADS, HEADS // KV_HEADS, DIM, device=dev, dtype=dt)
        ks = [torch.randn(batch, KV_HEADS, args.cache, DIM, device=dev, dtype=dt) for _ in range(LAYERS)]
        vs = [torch.randn(batch, KV_HEADS, args.cache, DIM, device=dev, dtype=dt) for _ in range(LAYERS)]
        valid = torch.arange(args.cache, device=dev) < args.valid
        mask = torch.where(valid, 0.0, torch.finfo(dt).min).to(dt)[None, None, None, :].expand(batch, 1, 1, -1)
        mask = mask.contiguous()
        ref = sdpa(q.float(), ks[0].float(), vs[0].float(), mask.float())
        floor_us = 2 * ks[0].numel() * 2 / 4.8e12 * 1e6
        row = {"kv_read_floor_us": round(floor_us, 1)}
        for name, fn in variants().items():
            try:
                err = (fn(q, ks[0], vs[0], mask).float() - ref).abs().max().item()
                row[name] = {"us_per_layer": round(measure(fn, q, ks, vs, mask, args.reps), 1), "max_err": err}
            except Exception as exc:  # a kernel that does not take these inputs: say so, go on
                row[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
            print(batch, name, row[name], flush=True)
        results[batch] = row
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decode_attention.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
