"""The small offline world: the tiny Qwen2.5-VL loads through the public Auto* path, generates on a real decoded
clip and trains; the synthetic benchmark is valid upstream format, decodable, exactly solvable, balanced,
deterministic, and disjoint from its training split. No mocks: real tokenizer, model, PyAV, mp4 files."""

from __future__ import annotations

import collections
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reasonkit.cli import main
from reasonkit.prompts import build_messages, question_text
from reasonkit.synth.benchmark import FRAME_SPEC, build_benchmark, make_scenes, qa_record
from reasonkit.synth.scenes import FRAMES, N_VALUES, SIZE, TASKS
from reasonkit.synth.solver import solve, solve_clip
from reasonkit.upstream_format import load_samples

av = pytest.importorskip("av")
torch = pytest.importorskip("torch")

NAME = "synthphys"


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return model, processor


def _rows(data_dir: Path, kind: str) -> list[dict]:
    return json.loads((data_dir / kind / NAME / f"{NAME}_{kind}.json").read_text())


# ---------------------------------------------------------------- model
def test_model_loads_like_a_hub_checkpoint(loaded):
    model, processor = loaded
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.tokenizer).__name__ == "Qwen2Tokenizer"
    assert type(processor.video_processor).__name__ == "Qwen2VLVideoProcessor"
    cfg = model.config
    text, vision = cfg.text_config, cfg.vision_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert head_dim in (32, 64, 80, 96, 112, 128)  # what vLLM's CPU attention supports
    assert sum(text.rope_parameters["mrope_section"]) * 2 == head_dim
    assert vision.out_hidden_size == text.hidden_size and not cfg.tie_word_embeddings
    tok = processor.tokenizer
    im_end, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == pad
    assert im_end in model.generation_config.eos_token_id and model.generation_config.pad_token_id == pad
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    # <think>/<answer> are single tokens that survive skip_special_tokens; the chat specials do not
    text_out = "<think> it moves left </think>\n\n<answer>B</answer>"
    ids = tok(f"<|im_start|>{text_out}<|im_end|>")["input_ids"]
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert tok.convert_tokens_to_ids(tag) in ids
    assert tok.decode(ids, skip_special_tokens=True) == text_out


def test_tokenizer_is_compact_on_benchmark_prompts(loaded, synth_data_dir):
    tok = loaded[1].tokenizer
    for sample in load_samples(synth_data_dir, NAME)[:5]:
        text = question_text(sample, "reasoning")
        assert len(tok(text)["input_ids"]) < len(text.split()) * 1.6  # its words are whole tokens


def test_chat_template_takes_strings_and_parts(loaded):
    processor = loaded[1]

    def render(messages, **kw):
        return processor.apply_chat_template(messages, tokenize=False, **kw)

    assert render([{"role": "user", "content": "hi"}], add_generation_prompt=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n")
    parts = [{"role": "system", "content": [{"type": "text", "text": "Answer the questions."}]},
             {"role": "user", "content": [{"type": "video"}, {"type": "image"}, {"type": "text", "text": "Q?"}]},
             {"role": "assistant", "content": "<answer>A</answer>"}]
    assert render(parts) == (
        "<|im_start|>system\nAnswer the questions.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|video_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>Q?<|im_end|>\n"
        "<|im_start|>assistant\n<answer>A</answer><|im_end|>\n")
    assert render([{"role": "system", "content": "S"}, {"role": "user", "content": "u"}]).startswith(
        "<|im_start|>system\nS<|im_end|>\n")


def test_generate_on_a_real_clip(loaded, synth_data_dir):
    from reasonkit.media import load_frames

    model, processor = loaded
    sample = load_samples(synth_data_dir, NAME)[0]
    frames = load_frames(sample.video, FRAME_SPEC)
    text = processor.apply_chat_template(build_messages(sample, "reasoning"), add_generation_prompt=True,
                                         tokenize=False)
    # transformers 5.19 takes the sampled fps from the metadata only (a bare fps= leaves it at 24 fps)
    inputs = processor(text=[text], videos=[frames.array], video_metadata=[frames.metadata()],
                       do_sample_frames=False, return_tensors="pt")
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert (t, h, w) == (FRAMES // 4 // 2, SIZE // 14, SIZE // 14)  # 4 sampled frames, temporal patch 2
    assert inputs["second_per_grid_ts"].tolist() == [1.0]  # 2 frames per temporal patch at 2 fps
    assert int((inputs["input_ids"] == model.config.video_token_id).sum()) == t * h * w // 4
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    assert 1 <= len(new) <= 8
    assert isinstance(processor.decode(new, skip_special_tokens=True), str)


def test_training_steps_lower_the_loss(loaded, synth_data_dir):
    from reasonkit.media import load_frames

    model, processor = loaded
    model = type(model).from_pretrained(model.name_or_path, dtype=torch.float32)  # keep the shared one pristine
    processor.tokenizer.padding_side = "right"
    rows = _rows(synth_data_dir, "sft")[:2]
    texts, prompt_lens, videos = [], [], []
    for row in rows:
        user, assistant = row["conversations"]
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": user["content"]}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        texts.append(prompt + assistant["content"] + "<|im_end|>")
        videos.append(load_frames(synth_data_dir / "sft" / NAME / row["video"], FRAME_SPEC))
        prompt_lens.append(len(processor(text=[prompt], videos=[videos[-1].array],
                                         video_metadata=[videos[-1].metadata()],
                                         do_sample_frames=False)["input_ids"][0]))
    batch = processor(text=texts, videos=[v.array for v in videos], video_metadata=[v.metadata() for v in videos],
                      do_sample_frames=False, padding=True, return_tensors="pt")
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = -100
    for i, n in enumerate(prompt_lens):
        labels[i, :n] = -100  # learn the assistant turn only
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(6):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses


# ---------------------------------------------------------------- benchmark on disk
def test_annotation_is_upstream_format_and_plugin_loads_it(synth_data_dir, fresh_plugins):
    samples = load_samples(synth_data_dir, NAME)
    assert len(samples) == 20
    assert collections.Counter(s.metadata["task"] for s in samples) == {t: 4 for t in TASKS}
    for s in samples:
        assert 2 <= len(s.choices) <= 5 and s.answer in s.choices and s.video.is_file()
    fixed = {"direction": ["left", "right", "up", "down"], "count": ["1", "2", "3", "4"], "collide": ["yes", "no"]}
    for s in samples:  # the default keeps each task's option order
        assert list(s.choices.values()) == fixed.get(s.metadata["task"], list(s.choices.values()))
    bench = fresh_plugins.get_benchmark(NAME)
    assert bench.frame_spec == FRAME_SPEC
    assert [s.id for s in bench.load(synth_data_dir)] == [s.id for s in samples]


def test_clips_decode_to_the_promised_frames(synth_data_dir):
    from reasonkit.media import load_frames

    clips = sorted((synth_data_dir / "benchmark" / NAME / "clips").glob("*.mp4"))
    assert len(clips) == 20
    with av.open(str(clips[0])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("h264", "mpeg4") and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == FRAMES
    for clip in clips[:5]:
        frames = load_frames(clip, FRAME_SPEC)
        assert frames.array.shape == (4, SIZE, SIZE, 3) and frames.array.dtype == np.uint8
        assert frames.fps == pytest.approx(2.0) and frames.source_frames == FRAMES


def test_solver_gets_everything_right(synth_data_dir):
    bench = synth_data_dir / "benchmark" / NAME
    for entry in json.loads((bench / f"{NAME}_benchmark_qa_pairs.json").read_text()):
        qa = entry["qa_pairs"][0]
        assert solve_clip(bench / entry["video"], qa) == qa["answer"], entry
    for row in _rows(synth_data_dir, "rl")[:15]:
        assert solve_clip(synth_data_dir / "rl" / NAME / row["video"], row["qa_pairs"]) == row["qa_pairs"]["answer"]


def test_solver_on_raw_rendered_frames():
    from reasonkit.synth.scenes import FPS, render_clip

    for scene, letter in make_scenes(25, 3, 0, tuple(TASKS)):
        qa = qa_record(scene, letter, np.random.default_rng(0))
        frames = render_clip(scene)[:: FPS // 2]  # 2 fps, evenly spaced
        assert solve(frames, qa, fps=2.0) == qa["answer"]


def test_training_split_matches_eval_prompts_and_is_disjoint(synth_data_dir):
    sft, rl = _rows(synth_data_dir, "sft"), _rows(synth_data_dir, "rl")
    assert len(sft) == len(rl) == 40
    digests = {}
    for split, folder in (("test", "benchmark"), ("train", "sft")):
        digests[split] = {hashlib.sha256(p.read_bytes()).hexdigest()
                          for p in (synth_data_dir / folder / NAME / "clips").glob("*.mp4")}
    assert len(digests["train"]) == 40 and not digests["train"] & digests["test"]
    from reasonkit.types import Sample

    for s_row, r_row in zip(sft, rl):
        qa = r_row["qa_pairs"]
        assert s_row["video"] == r_row["video"] and (synth_data_dir / "rl" / NAME / r_row["video"]).is_file()
        user, assistant = s_row["conversations"]
        sample = Sample(id="x", dataset=NAME, video=None, question=qa["question"], choices=qa["index2ans"],
                        answer=qa["answer"])
        assert user == {"role": "user", "content": question_text(sample, "reasoning")}
        match = re.fullmatch(r"<think> (.+) </think>\n\n<answer>([A-E])</answer>", assistant["content"], re.S)
        assert assistant["role"] == "assistant" and match and match.group(2) == qa["answer"]


# ---------------------------------------------------------------- balance, no text shortcut, determinism
@pytest.mark.parametrize("shuffle", [False, True])
def test_answers_are_balanced_and_text_gives_no_shortcut(shuffle):
    scenes = make_scenes(200, 0, 0, tuple(TASKS))
    rng = np.random.default_rng(0)
    by_task = collections.defaultdict(list)
    for scene, letter in scenes:
        by_task[scene.task].append((scene, qa_record(scene, letter if shuffle else None, rng)))
    for task, items in by_task.items():
        m = N_VALUES[task]
        letters = collections.Counter(qa["answer"] for _, qa in items)
        values = collections.Counter(scene.answer for scene, _ in items)
        assert len(letters) == len(values) == m and max(letters.values()) - min(letters.values()) <= 1, task
        assert max(values.values()) - min(values.values()) <= 1, task
        for scene, qa in items:  # the options are always the full value set, whatever the answer
            assert sorted(qa["index2ans"].values()) == sorted(scene.values)
            assert qa["index2ans"][qa["answer"]] == scene.values[scene.answer]
            if not shuffle:  # fixed order: the option list does not depend on the answer
                assert list(qa["index2ans"].values()) == list(scene.values)
    # where options name objects, the right one is the first-named as often as not
    first = [scene.answer == 0 for scene, _ in by_task["faster"]]
    assert abs(sum(first) - len(first) / 2) <= 1


def test_benchmark_is_deterministic_for_a_seed(tmp_path):
    def build(root, seed):
        build_benchmark(root, n=10, train_n=10, seed=seed)
        files = sorted(p for p in root.rglob("*") if p.is_file())
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    a, b, c = build(tmp_path / "a", 7), build(tmp_path / "b", 7), build(tmp_path / "c", 8)
    assert a == b and len(a) == 3 + 10 + 10 + 10
    annotation = f"benchmark/{NAME}/{NAME}_benchmark_qa_pairs.json"
    assert a[annotation] != c[annotation]


# ---------------------------------------------------------------- CLI
def test_cli_builds_a_benchmark(tmp_path, capsys):
    assert main(["synth", "benchmark", "--out", str(tmp_path), "--n", "5", "--train-n", "3", "--seed", "1",
                 "--shuffle-options"]) == 0
    assert len(load_samples(tmp_path, NAME)) == 5 and len(_rows(tmp_path, "sft")) == 3
    assert "benchmark" in capsys.readouterr().out
    assert main(["synth", "model", "--out", str(tmp_path / "m"), "--size", "huge"]) == 2
    assert not (tmp_path / "m").exists()


def test_cli_module_imports_nothing_heavy():
    code = ("import sys, reasonkit.cli.synth; "
            "print(sorted(m for m in ('torch', 'transformers', 'av', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_demo_builds_evaluates_and_prints_accuracy_per_question_type(tmp_path, capsys):
    """`reasonkit demo` without its SFT stage (the training loop is proven in tests/test_learning.py)."""
    from reasonkit import cli

    args = ["demo", "--dir", str(tmp_path / "demo"), "--no-train", "--n", "10", "--train-n", "5"]
    assert cli.main([*args, "--tasks", "all"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "demo" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "demo" / "data" / "all" / "benchmark" / "synthphys").is_dir()
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[-7:]}
    assert set(rows) == {"task", *TASKS, "all"} and rows["task"] == ["chance", "before"]
    assert rows["count"][0] == "25%" and rows["collide"][0] == "50%"

    assert cli.main(args) == 0  # the default: counting questions only, in their own data folder
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[-3:]}
    assert set(rows) == {"task", "count", "all"} and rows["all"][0] == "25%"
    annotation = tmp_path / "demo" / "data" / "count" / "benchmark" / "synthphys" / "synthphys_benchmark_qa_pairs.json"
    assert {q["task"] for row in json.loads(annotation.read_text()) for q in row["qa_pairs"]} == {"count"}

    assert cli.main([*args, "--tasks", "count,spin"]) != 0
    assert "--tasks" in capsys.readouterr().err
