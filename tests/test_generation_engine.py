"""reasonkit's generation engine (reasonkit/generation) against transformers `generate` on the tiny Qwen2.5-VL
and Qwen3-VL in fp32 on the CPU: greedy tokens identical, sampled tokens distributed as the model's softmax, seeds
reproducible whatever the batch, penalties with generate's semantics, one vision-tower pass per clip."""

from __future__ import annotations

import pytest
import torch
from helpers import write_clip

from reasonkit.types import FrameSpec

QUESTIONS = ["What moves?", "Describe what happens in the video, step by step, in detail.", "Count.",
             "Which way does the bright bar go, left or right?"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared 2-core machine (see test_grpo.py)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["qwen2.5-vl", "qwen3-vl"])
def family(request, tiny_model_dir, tiny_qwen3_dir, tmp_path_factory):
    """(model, processor, frames of 3 distinct clips) per family."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from reasonkit.media import load_frames

    folder, factor = (tiny_model_dir, 28) if request.param == "qwen2.5-vl" else (tiny_qwen3_dir, 32)
    processor = AutoProcessor.from_pretrained(folder)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    spec = FrameSpec(fps=4, min_frames=4, max_frames=8, min_pixels=28 * 28, max_pixels=16 * 28 * 28,
                     size_factor=factor)
    root = tmp_path_factory.mktemp("engine-clips")
    frames = [load_frames(write_clip(root / f"c{i}.mp4", frames=8 + 4 * i, size=(64, 96), seed=i), spec)
              for i in range(3)]
    return model, processor, frames


def messages(question: str, video: bool = True) -> list[dict]:
    content = ([{"type": "video"}] if video else []) + [{"type": "text", "text": question}]
    return [{"role": "user", "content": content}]


def make_engine(model, processor, **kwargs):
    from reasonkit.generation import Engine

    return Engine(model, pad_id=processor.tokenizer.pad_token_id, eos_ids=model.generation_config.eos_token_id,
                  **kwargs)


def hf_generate(model, processor, msgs, frames, **kwargs) -> list[list[int]]:
    from reasonkit.encoding import model_inputs

    inputs = model_inputs(processor, msgs, frames, padding=True)
    with torch.inference_mode():
        out = model.generate(**inputs, **kwargs)
    return out[:, inputs["input_ids"].shape[1]:].tolist()


def trim(ids: list[int], eos: set[int]) -> list[int]:
    """generate pads finished rows: cut after the first stop token (kept, as the engine keeps it)."""
    stop = next((i for i, t in enumerate(ids) if t in eos), None)
    return ids if stop is None else ids[: stop + 1]


def test_greedy_tokens_equal_generate_for_mixed_length_video_batches(family):
    from reasonkit.generation import RowSettings, encode

    model, processor, frames = family
    clips = [frames[i % 3] for i in range(4)]
    msgs = [messages(q) for q in QUESTIONS]
    eos = set(model.generation_config.eos_token_id)
    greedy = dict(do_sample=False, temperature=None, top_p=None, top_k=None, max_new_tokens=20)
    reference = [trim(r, eos) for r in hf_generate(model, processor, msgs, clips, **greedy)]
    prompts = [encode(processor, m, f) for m, f in zip(msgs, clips)]
    assert len({p.length for p in prompts}) >= 3  # really padded
    engine = make_engine(model, processor)
    outputs = engine.generate([(p, RowSettings(max_tokens=20)) for p in prompts])
    assert [o.token_ids for o in outputs] == reference
    # text-only prompts go through the same loop (1D rope ids on all 3 mrope rows)
    text = [messages(q, video=False) for q in QUESTIONS[:3]]
    reference = [trim(r, eos) for r in hf_generate(model, processor, text, [None] * 3, **greedy)]
    outputs = engine.generate([(encode(processor, m), RowSettings(max_tokens=20)) for m in text])
    assert [o.token_ids for o in outputs] == reference


def test_penalties_follow_generate(family):
    """repetition_penalty (transformers': over prompt and generated tokens) and presence/frequency (the hf
    backend's PenaltyProcessor: generated tokens only), greedy, each request against generate run alone."""
    from transformers import LogitsProcessorList

    from reasonkit.backends.hf import PenaltyProcessor
    from reasonkit.encoding import model_inputs
    from reasonkit.generation import RowSettings, encode

    model, processor, frames = family
    eos = set(model.generation_config.eos_token_id)
    settings = [dict(repetition_penalty=1.8), dict(presence_penalty=1.5, frequency_penalty=0.7),
                dict(repetition_penalty=1.3, presence_penalty=0.5, frequency_penalty=2.0)]
    engine = make_engine(model, processor)
    rows, expected = [], []
    for i, s in enumerate(settings):
        msgs, clip = messages(QUESTIONS[i]), frames[i]
        prompt_len = model_inputs(processor, [msgs], [clip])["input_ids"].shape[1]
        kwargs = dict(do_sample=False, temperature=None, top_p=None, top_k=None, max_new_tokens=24,
                      repetition_penalty=s.get("repetition_penalty", 1.0))
        if "presence_penalty" in s:
            kwargs["logits_processor"] = LogitsProcessorList(
                [PenaltyProcessor(prompt_len, s["presence_penalty"], s["frequency_penalty"])])
        expected.append(trim(hf_generate(model, processor, [msgs], [clip], **kwargs)[0], eos))
        rows.append((encode(processor, msgs, clip), RowSettings(max_tokens=24, **s)))
    plain = engine.generate([(p, RowSettings(max_tokens=24)) for p, _ in rows])
    penalised = engine.generate(rows)
    assert [o.token_ids for o in penalised] == expected
    assert all(a.token_ids != b.token_ids for a, b in zip(plain, penalised))  # the penalties did something


def test_seeded_completions_do_not_depend_on_batch_neighbours(family):
    from reasonkit.generation import RowSettings, encode

    model, processor, frames = family
    engine = make_engine(model, processor)
    target = encode(processor, messages(QUESTIONS[1]), frames[0])
    sampled = dict(max_tokens=16, temperature=1.0, top_p=0.9, top_k=40)
    alone = engine.generate([(target, RowSettings(seed=7, **sampled))])[0].token_ids
    others = [encode(processor, messages(q), f) for q, f in zip(QUESTIONS, frames * 2)]
    crowd = [(p, RowSettings(seed=100 + i, **sampled)) for i, p in enumerate(others)]
    crowd.insert(2, (target, RowSettings(seed=7, **sampled)))  # other lengths, other seeds, a 5-row batch
    assert engine.generate(crowd)[2].token_ids == alone
    greedy_neighbours = [(p, RowSettings(max_tokens=16)) for p in others[:2]] + [(target, RowSettings(seed=7,
                                                                                                      **sampled))]
    assert engine.generate(greedy_neighbours)[2].token_ids == alone  # a mixed greedy/sampled batch
    again = engine.generate([(target, RowSettings(seed=8, **sampled)), (target, RowSettings(seed=7, **sampled))])
    assert again[1].token_ids == alone and again[0].token_ids != alone


def test_warm_up_builds_the_bucket_a_batch_uses_and_changes_no_output(family):
    from reasonkit.generation import RowSettings, encode
    from reasonkit.generation.engine import bucket_length, bucket_rows

    model, processor, frames = family
    prompts = [encode(processor, messages(q), f) for q, f in zip(QUESTIONS, frames * 2)]
    settings = RowSettings(max_tokens=16, temperature=1.0, top_p=0.9, seed=3)
    rows = [(p, settings) for p in prompts]
    cold = [o.token_ids for o in make_engine(model, processor).generate(rows)]
    engine = make_engine(model, processor)
    assert engine.warm_up(len(rows), max(p.length for p in prompts), settings) > 0
    length = bucket_length(max(p.length for p in prompts) + 16)
    assert [key[:2] for key in engine.steps] == [(bucket_rows(len(rows), engine.max_batch), length)]
    assert [o.token_ids for o in engine.generate(rows)] == cold
    assert len(engine.steps) == 1  # the batch ran on the warmed-up step


def test_a_small_bucket_budget_splits_batches_without_changing_outputs(family):
    """With room for the buckets of only a few rows, a crowd runs as several smaller batches (and held buckets
    are evicted to stay within the budget), with the same tokens as one batch."""
    from reasonkit.generation import RowSettings, encode
    from reasonkit.generation.engine import bucket_length, bucket_rows
    from reasonkit.generation.state import BatchState

    assert [bucket_rows(n, 256) for n in (1, 3, 32, 33, 40, 160, 161, 300)] == [1, 4, 32, 64, 64, 160, 192, 300]
    model, processor, frames = family
    prompts = [encode(processor, messages(q), f) for q, f in zip(QUESTIONS, frames * 2)]
    rows = [(p, RowSettings(max_tokens=12, temperature=1.0, seed=s)) for p in prompts for s in range(3)]
    together = make_engine(model, processor).generate(rows)
    cfg, vocab = model.model.language_model.config, model.lm_head.out_features
    length = bucket_length(max(p.length for p in prompts) + 12)
    budget = BatchState.bytes_for(cfg, 4, length, vocab, torch.float32)  # 4 rows of the longest prompt
    small = make_engine(model, processor, cache_bytes=budget)
    apart = small.generate(rows)
    assert [o.token_ids for o in apart] == [o.token_ids for o in together]
    assert all(key[0] <= 4 for key in small.states) and sum(st.nbytes for st in small.states.values()) <= budget


def test_rows_that_finish_leave_the_batch_without_changing_any_output(family):
    """Rows with short budgets finish early; the rows still running move to smaller buckets (8 -> 4 -> 2 -> 1 here)
    with the same tokens and log-probs as a batch that keeps every slot to the end."""
    from reasonkit.generation import RowSettings, encode

    model, processor, frames = family
    prompts = [encode(processor, messages(q), f) for q, f in zip(QUESTIONS, frames * 2)]
    budgets = [3, 40, 5, 9, 17, 6, 4, 30]
    rows = [(prompts[i % 4], RowSettings(max_tokens=m, temperature=[0.0, 1.0][i % 2], top_p=0.9, seed=i,
                                         repetition_penalty=1.2 if i == 3 else 1.0)) for i, m in enumerate(budgets)]
    kept = make_engine(model, processor, check_every=2, compact_min_steps=10**6).generate(rows)
    moving = make_engine(model, processor, check_every=2, compact_min_steps=2)
    moved = moving.generate(rows)
    assert [len(o.token_ids) for o in kept] == budgets  # no stop token here: each row ran its whole budget
    assert [o.token_ids for o in moved] == [o.token_ids for o in kept]
    flat = [lp for o in kept for lp in o.logprobs]
    assert [lp for o in moved for lp in o.logprobs] == pytest.approx(flat, abs=1e-5)
    assert sorted(rows for rows, _ in moving.states) == [1, 2, 4, 8]


def test_a_streamer_gets_the_prompt_then_the_tokens_as_they_come(family):
    """transformers' streamer contract (put(prompt ids), put(new ids)..., end()), every check_every steps."""
    from reasonkit.generation import RowSettings, encode

    class Recorder:
        def __init__(self):
            self.puts, self.ended = [], False

        def put(self, ids):
            self.puts.append(ids.reshape(-1).tolist())

        def end(self):
            self.ended = True

    model, processor, frames = family
    prompt = encode(processor, messages(QUESTIONS[0]), frames[0])
    recorder = Recorder()
    out = make_engine(model, processor, check_every=4).generate([(prompt, RowSettings(max_tokens=18))],
                                                               streamer=recorder)[0]
    assert recorder.ended and recorder.puts[0] == prompt.input_ids.tolist()
    assert [len(p) for p in recorder.puts[1:]] == [5, 4, 4, 4, 1]  # as generated, not all at the end
    assert sum(recorder.puts[1:], []) == out.token_ids
    with pytest.raises(ValueError, match="one completion"):
        make_engine(model, processor).generate([(prompt, RowSettings(max_tokens=4))] * 2, streamer=recorder)


def chi_square_p(observed: dict[int, int], probs: torch.Tensor, n: int) -> float:
    """Pearson's goodness-of-fit p-value of token counts against ``probs``; cells expected < 5 pooled."""
    expected = probs * n
    big = (expected >= 5).nonzero()[:, 0].tolist()
    obs = [observed.get(t, 0) for t in big] + [n - sum(observed.get(t, 0) for t in big)]
    exp = [float(expected[t]) for t in big] + [n - float(expected[big].sum())]
    if exp[-1] < 5:  # nothing (or too little) left to pool: merge the rest into the last big cell
        obs[-2] += obs.pop()
        exp[-2] += exp.pop()
    stat = sum((o - e) ** 2 / e for o, e in zip(obs, exp))
    dof = len(obs) - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                         torch.tensor(stat / 2, dtype=torch.float64)))


def warped_probs(model, processor, msgs, clip, prefix: list[int], temperature: float, top_k: int,
                 top_p: float) -> torch.Tensor:
    """The next-token distribution generate samples from, by transformers' own warpers."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from reasonkit.encoding import model_inputs

    inputs = model_inputs(processor, [msgs], [clip])
    if prefix:
        extra = torch.tensor([prefix])
        inputs["input_ids"] = torch.cat([inputs["input_ids"], extra], 1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(extra)], 1)
    with torch.inference_mode():  # on the model's device (the GPU tests), warped on the CPU
        scores = model(**{k: v.to(model.device) for k, v in inputs.items()}).logits[:, -1].float().cpu()
    for warp in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(top_p)):
        scores = warp(inputs["input_ids"], scores)
    return scores.softmax(-1)[0]


def test_sampled_tokens_follow_the_models_distribution(family):
    """2,400 seeds of one video prompt: the first sampled token's counts fit the warped softmax (temperature,
    top-k, top-p by transformers' own warpers), and so do the second token's given the most frequent first one.
    The same statistic rejects the distribution at another temperature, so the test can fail."""
    from reasonkit.generation import RowSettings, encode

    model, processor, frames = family
    msgs, clip = messages(QUESTIONS[0]), frames[0]
    temperature, top_k, top_p, n = 0.6, 30, 0.9, 2400
    prompt = encode(processor, msgs, clip)
    engine = make_engine(model, processor, max_batch=64)
    outputs = engine.generate([(prompt, RowSettings(max_tokens=2, temperature=temperature, top_k=top_k,
                                                    top_p=top_p, seed=s)) for s in range(n)])
    first: dict[int, int] = {}
    for o in outputs:
        first[o.token_ids[0]] = first.get(o.token_ids[0], 0) + 1
    probs = warped_probs(model, processor, msgs, clip, [], temperature, top_k, top_p)
    assert set(first) <= set(probs.nonzero()[:, 0].tolist())  # nothing outside top-k / top-p
    assert chi_square_p(first, probs, n) > 1e-3
    hotter = warped_probs(model, processor, msgs, clip, [], 1.5, top_k, top_p)
    assert chi_square_p(first, hotter, n) < 1e-6

    top = max(first, key=first.get)
    second: dict[int, int] = {}
    for o in outputs:
        if o.token_ids[0] == top and len(o.token_ids) > 1:
            second[o.token_ids[1]] = second.get(o.token_ids[1], 0) + 1
    m = sum(second.values())
    assert m >= 200
    conditional = warped_probs(model, processor, msgs, clip, [top], temperature, top_k, top_p)
    assert chi_square_p(second, conditional, m) > 1e-3


def test_one_vision_tower_pass_per_clip(family):
    """Questions on the same clip, several seeds, a retry and n completions: one tower pass per distinct clip."""
    from reasonkit.generation import RowSettings, encode

    model, processor, frames = family
    calls = []
    hook = model.model.visual.register_forward_hook(lambda *args: calls.append(1))
    try:
        engine = make_engine(model, processor)
        rows = [(encode(processor, messages(q), frames[0]), RowSettings(max_tokens=4, temperature=1.0, seed=s))
                for q in QUESTIONS for s in range(2)]
        group = encode(processor, messages(QUESTIONS[0]), frames[1])
        rows += [(group, RowSettings(max_tokens=4, temperature=1.0, seed=s)) for s in range(4)]  # a GRPO group
        engine.generate(rows)
        engine.generate(rows[:3])  # a retry
        assert len(calls) == engine.vision.tower_calls == 1  # both clips in one batched tower call
        engine.generate([(encode(processor, messages("Again?"), frames[2]), RowSettings(max_tokens=4))])
        assert len(calls) == 2 and len(engine.vision.entries) == 3
        engine.vision.clear()  # new weights (a GRPO step training the tower): computed again
        engine.generate(rows[:1])
        assert len(calls) == 3
    finally:
        hook.remove()


def test_top_k_top_p_match_transformers_warpers():
    """Per-row top-k / top-p on random scores equal transformers' warpers row by row (which tokens survive)."""
    from types import SimpleNamespace

    from transformers import TopKLogitsWarper, TopPLogitsWarper

    from reasonkit.generation.sampling import Flags, warped_scores

    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 500, generator=gen) * 3
    scores[0, :10] = 5.0  # ties at the k-th value are kept
    ks, ps = [5, 0, 50, 1, 499, 20], [0.9, 0.5, 1.0, 0.99, 0.3, 1.0]
    st = SimpleNamespace(temperature=torch.ones(6), top_k=torch.tensor(ks), top_p=torch.tensor(ps))
    ours = warped_scores(scores, st, Flags(sample=True, top_k=max(ks), top_p=True))
    for row, (k, p) in enumerate(zip(ks, ps)):
        expected = scores[row: row + 1]
        if k > 0:
            expected = TopKLogitsWarper(k)(None, expected)
        expected = TopPLogitsWarper(p)(None, expected)
        assert torch.equal(torch.isinf(ours[row]), torch.isinf(expected[0])), row


def test_hf_backend_runs_the_engine_and_keeps_generate_as_an_option(family):
    """The hf backend's default engine gives generate's greedy answers (texts and ids, stop token handling), per
    request seeds make sampled answers independent of the batch, and an unknown engine is refused."""
    from reasonkit.backends.hf import HFBackend
    from reasonkit.errors import ConfigError
    from reasonkit.types import GenRequest

    model, processor, frames = family
    ours, theirs = HFBackend.from_model(model, processor), HFBackend.from_model(model, processor, engine="generate")
    assert ours.engine == "reasonkit"
    requests = [GenRequest(messages=messages(q), frames=f, max_tokens=12) for q, f in zip(QUESTIONS, frames)]
    for keep in (False, True):
        a, b = ours.generate(requests, keep_stop_token=keep), theirs.generate(requests, keep_stop_token=keep)
        assert [r.token_ids for r in a] == [r.token_ids for r in b]
        assert [r.texts for r in a] == [r.texts for r in b]
        assert [r.prompt_tokens for r in a] == [r.prompt_tokens for r in b]
    sampled = [GenRequest(messages=messages(q), frames=f, max_tokens=8, temperature=1.0, seed=5, n=3)
               for q, f in zip(QUESTIONS, frames)]
    together = ours.generate(sampled)
    assert [ours.generate([r])[0].token_ids for r in sampled] == [r.token_ids for r in together]
    assert len({tuple(ids) for ids in together[0].token_ids}) > 1  # the n completions differ
    with pytest.raises(ConfigError, match="model.engine"):
        HFBackend.from_model(model, processor, engine="vllm")


def test_engine_logprobs_are_the_trainers_recomputed_logprobs(tiny_model_dir, synth_data_dir):
    """GRPO's on-policy premise with the engine as the hf rollout's sampler: the trainer's recomputed log-probs
    (T = 1) of the engine's sampled completions equal the engine's own, completion by completion."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from reasonkit.backends.hf import HFBackend
    from reasonkit.generation.backend import engine_for
    from reasonkit.generation.prompts import encode
    from reasonkit.generation.state import RowSettings
    from reasonkit.plugins import get_dataset
    from reasonkit.synth.benchmark import FRAME_SPEC
    from reasonkit.train.data import decode
    from reasonkit.train.grpo.data import make_prompt
    from reasonkit.train.grpo.sequences import build_batch, completion_logps

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    rows = get_dataset("synthphys")(str(synth_data_dir), split="rl")[:2]
    prompts = [make_prompt(r, decode(r, FRAME_SPEC), processor, "reasoning") for r in rows]
    engine = engine_for(HFBackend.from_model(model, processor))
    encoded = [encode(processor, p.messages, p.frames) for p in prompts]
    outputs = engine.generate([(e, RowSettings(max_tokens=10, temperature=1.0, seed=s))
                               for e in encoded for s in range(3)])
    batch = build_batch([(prompts[i // 3].encoding, o.token_ids) for i, o in enumerate(outputs)],
                        pad_id=processor.tokenizer.pad_token_id)
    with torch.no_grad():
        trainer = completion_logps(model, batch, 1.0)
    for row, o in enumerate(outputs):
        assert torch.equal(prompts[row // 3].encoding["input_ids"][0], encoded[row // 3].input_ids)
        torch.testing.assert_close(trainer[row, : len(o.token_ids)], torch.tensor(o.logprobs), atol=1e-4, rtol=0)


def test_cached_features_equal_the_models_own_vision_forward(family):
    """The engine's vision features (Qwen2.5-VL: windows batched into one attention call each block) equal the
    model's unpatched get_video_features for the same clips, several clips per tower call."""
    from reasonkit.generation import encode

    model, processor, frames = family
    engine = make_engine(model, processor)
    clips = [encode(processor, messages("q"), f).videos[0] for f in frames]
    ours = engine.vision.features(clips)
    patched = [b.attn for b in model.model.visual.blocks if "forward" in vars(b.attn)]
    assert len(patched) == (len(model.model.visual.blocks) if engine.vision.batched_windows else 0)
    saved = [vars(a).pop("forward") for a in patched]
    try:
        with torch.inference_mode():
            reference = model.model.get_video_features(torch.cat([c.pixel_values for c in clips]),
                                                       torch.stack([c.grid_thw for c in clips]), return_dict=True)
    finally:
        for a, fwd in zip(patched, saved):
            a.forward = fwd
    for mine, theirs in zip(ours, reference.pooler_output):
        torch.testing.assert_close(mine.embeds, theirs, atol=1e-5, rtol=1e-5)


def decode_attention_case(dtype=torch.float32):
    """A GQA decode step's inputs as the attention layer hands them over, row 0 left-padded, and the reference:
    K/V heads repeated, as transformers' sdpa does, in fp32."""
    torch.manual_seed(0)
    batch, heads, kv_heads, length, dim = 3, 16, 2, 9, 8
    query = torch.randn(batch, 1, heads, dim).transpose(1, 2)
    key, value = torch.randn(batch, kv_heads, length, dim), torch.randn(batch, kv_heads, length, dim)
    mask = torch.ones(batch, 1, 1, length, dtype=torch.bool)
    mask[0, ..., :4] = False
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(heads // kv_heads, 1), value.repeat_interleave(heads // kv_heads, 1),
        attn_mask=mask).transpose(1, 2)
    additive = torch.where(mask, 0.0, torch.finfo(dtype).min).to(dtype)  # the engine's mask
    return (query.to(dtype), key.to(dtype), value.to(dtype), additive), expected


@pytest.mark.parametrize("rows_as_matmul", [16, 0], ids=["matmul", "sdpa"])
def test_gqa_decode_attention_takes_kernel_layouts(monkeypatch, rows_as_matmul):
    """Both decode paths (matmuls for a few rows, folded SDPA above) equal the repeated-heads reference. CUDA's SDPA
    kernels may return [B, L, H, D]-strided outputs (the H200 did at the 3B head counts): the folded decode must
    not assume a contiguous result."""
    from reasonkit.generation import attention

    (query, key, value, mask), expected = decode_attention_case()
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def kernel_layout(*args, **kwargs):  # same values, stored [B, L, H, D] like the fused kernels' outputs
        return sdpa(*args, **kwargs).transpose(1, 2).contiguous().transpose(1, 2)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", kernel_layout)
    monkeypatch.setattr(attention, "MATMUL_DECODE_ROWS", rows_as_matmul)
    module = torch.nn.Module().eval()
    out, _ = attention.gqa_sdpa_attention(module, query, key, value, mask)
    assert out.shape == expected.shape
    assert torch.allclose(out, expected, atol=1e-6)


def test_matmul_decode_in_bf16_is_within_the_outputs_rounding():
    """bf16 inputs (the CPU upcasts; CUDA keeps fp32 scores through bmm's out_dtype, tests/test_gpu.py): the
    result is the fp32 reference up to rounding the output to bf16 (8 significant bits)."""
    from reasonkit.generation.attention import grouped_matmul_decode

    (query, key, value, mask), expected = decode_attention_case(torch.bfloat16)
    out = grouped_matmul_decode(query, key, value, mask, None)
    assert out.dtype == torch.bfloat16
    inputs_rounding = 3 * 2 ** -8 * expected.abs().max().item()  # q, k, v each rounded once to bf16
    assert (out.float() - expected).abs().max().item() < inputs_rounding


def test_top_p_cumulative_sum_equals_cumsum_at_vocabulary_sizes():
    """The two-scan cumulative sum top-p uses (see sampling.blocked_cumsum) equals torch.cumsum, block multiples
    or not, up to float32 summation order."""
    from reasonkit.generation.sampling import blocked_cumsum

    torch.manual_seed(0)
    for n in (7, 1024, 3000, 151936):
        probs = torch.rand(3, n).softmax(-1)
        torch.testing.assert_close(blocked_cumsum(probs), probs.cumsum(-1), atol=1e-6, rtol=0)
