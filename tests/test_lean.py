"""The memory-lean training forward (reasonkit.train.lean) computes what transformers' own forward computes:
the SFT loss and its gradients, GRPO's completion log-probs (one vision encoding per shared clip), and a frozen
vision tower that gets no backward at all. CPU, fp32, the tiny model: seconds."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture
def model_and_batch(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    video = (torch.rand(4, 3, 56, 56) * 255).to(torch.uint8).numpy()
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "how many balls?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "<answer>three</answer>"}]}]
    text = processor.apply_chat_template(messages, tokenize=False)
    enc = dict(processor(text=[text], videos=[video], return_tensors="pt", do_sample_frames=False))
    labels = enc["input_ids"].clone()
    labels[:, : labels.shape[1] // 2] = -100
    return model, enc, labels


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_label_loss_matches_hf_loss_and_gradients(model_and_batch):
    from reasonkit.train import lean

    model, enc, labels = model_and_batch
    reference = model(**enc, labels=labels).loss
    reference.backward()
    expected = grads(model)
    model.zero_grad(set_to_none=True)
    lean.install(model, chunk_tokens=3)  # several chunks, each recomputed in backward
    loss = model(**enc, reasonkit_head=lean.LabelLoss(labels, chunk_tokens=3)).loss
    loss.backward()
    got = grads(model)
    assert torch.allclose(loss, reference, rtol=1e-5, atol=1e-6)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=1e-4, atol=1e-6), name
    # without the keyword the class's own forward runs (generate, eval)
    assert torch.allclose(model(**enc, labels=labels).loss, reference, rtol=1e-6)


def test_frozen_vision_tower_runs_no_backward(model_and_batch):
    from reasonkit.train import lean

    model, enc, labels = model_and_batch
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    for p in model.model.visual.parameters():
        p.requires_grad_(False)
    lean.install(model)
    seen = []
    model.model.visual.blocks[0].register_full_backward_hook(lambda *a: seen.append(1))
    loss = model(**enc, reasonkit_head=lean.LabelLoss(labels)).loss
    loss.backward()
    assert not seen  # the block's backward never ran (the checkpointing hook on the patch embedding is moot)
    assert model.model.language_model.layers[0].mlp.down_proj.weight.grad is not None


def test_completion_logps_share_one_video_encoding(model_and_batch):
    from reasonkit.train import lean
    from reasonkit.train.grpo.sequences import build_batch, completion_logps

    model, enc, _ = model_and_batch
    prompt = {k: v for k, v in enc.items()}
    items = [(prompt, [5, 6, 7]), (prompt, [8, 9])]
    batch = build_batch(items, pad_id=0)
    assert batch["video_index"].tolist() == [0, 0]
    assert batch["pixel_values_videos"].shape[0] == enc["pixel_values_videos"].shape[0]  # the clip once
    plain = dict(batch)
    plain.pop("video_index")
    plain["pixel_values_videos"] = torch.cat([enc["pixel_values_videos"]] * 2)
    expected, expected_entropy = completion_logps(model, plain, 0.7, with_entropy=True)  # HF's logits path
    # a module without the lean forward gets the shared clip laid out per row again
    assert torch.equal(completion_logps(model, batch, 0.7), expected)
    calls = []
    model.model.visual.register_forward_hook(lambda *a: calls.append(1))
    lean.install(model)
    got, entropy = completion_logps(model, batch, 0.7, with_entropy=True)
    assert len(calls) == 1
    mask = batch["completion_mask"].bool()
    assert torch.allclose(got[mask], expected[mask], rtol=1e-5, atol=1e-5)
    assert torch.allclose(entropy[mask], expected_entropy[mask], rtol=1e-5, atol=1e-5)
    assert (got[~mask] == 0).all()


def test_batched_vision_windows_match_one_call_per_window(tiny_model_dir):
    from transformers import AutoModelForImageTextToText

    from reasonkit.train import lean

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    visual = model.model.visual
    grid = torch.tensor([[2, 16, 16], [2, 8, 8]])  # 224x224 (4 windows a frame) and 112x112 clips
    pixels = torch.randn(int(grid.prod(-1).sum()), 3 * 2 * 14 * 14)
    first = int(grid[0].prod())
    with torch.no_grad():
        expected = visual(pixels[:first], grid_thw=grid[:1]).pooler_output
        mixed = visual(pixels, grid_thw=grid).pooler_output  # unequal frames: the module's own path
    calls = []
    lean.batch_vision_attention(model)
    original = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape[0])
        return original(*args, **kwargs)

    torch.nn.functional.scaled_dot_product_attention = counting
    try:
        with torch.no_grad():
            got = visual(pixels[:first], grid_thw=grid[:1]).pooler_output
            got_mixed = visual(pixels, grid_thw=grid).pooler_output
    finally:
        torch.nn.functional.scaled_dot_product_attention = original
    assert calls[0] == 8  # 2 frames x 4 windows in one call
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.allclose(got_mixed, mixed, rtol=1e-5, atol=1e-5)
