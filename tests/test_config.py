"""Strict config loading: unknown keys, wrong types, missing files, typed --set overrides, presets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reasonkit.config import PRESET_DIR, EvalConfig, load_config
from reasonkit.errors import ConfigError


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_preset_validates():
    presets = sorted(PRESET_DIR.glob("*.yaml"))
    assert len(presets) >= 7
    for path in presets:
        cfg = load_config(EvalConfig, path)
        assert cfg.datasets


def test_upstream_defaults_in_robovqa_preset():
    cfg = load_config(EvalConfig, PRESET_DIR / "robovqa.yaml")
    assert (cfg.generation.temperature, cfg.generation.top_p, cfg.generation.max_tokens) == (0.6, 0.95, 1024)
    assert (cfg.frames.fps, cfg.frames.min_pixels, cfg.frames.max_pixels) == (4, 128 * 28 * 28, 768 * 28 * 28)
    assert cfg.evaluation.seed == 1 and cfg.generation.max_retries == 10


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, "p.yaml", "datasets: [robovqa]\ngeneration:\n  temprature: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(EvalConfig, path)
    assert str(err.value) == f"{path}: unknown key 'generation.temprature' — did you mean 'temperature'?"


def test_unknown_top_level_section(tmp_path):
    path = write(tmp_path, "p.yaml", "datasets: [robovqa]\nmodle: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'modle' — did you mean 'model'\?"):
        load_config(EvalConfig, path)


def test_wrong_type_names_key_and_value(tmp_path):
    path = write(tmp_path, "p.yaml", "datasets: [robovqa]\nevaluation:\n  batch_size: lots\n")
    with pytest.raises(ConfigError, match=r"p.yaml: key 'evaluation.batch_size': .*integer.*'lots'"):
        load_config(EvalConfig, path)


def test_out_of_range_and_enum(tmp_path):
    path = write(tmp_path, "p.yaml", "datasets: [x]\nevaluation:\n  answer_type: essay\n")
    with pytest.raises(ConfigError, match="evaluation.answer_type.*'reasoning' or 'letter'"):
        load_config(EvalConfig, path)


def test_missing_file_and_bad_syntax(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found"):
        load_config(EvalConfig, tmp_path / "nope.yaml")
    bad = write(tmp_path, "bad.yaml", "datasets: [a\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_config(EvalConfig, bad)
    bad_toml = write(tmp_path, "bad.toml", "[train\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_config(EvalConfig, bad_toml)


def test_set_overrides_are_typed():
    cfg = load_config(EvalConfig, PRESET_DIR / "robovqa.yaml",
                      ["generation.temperature=0", "evaluation.limit=5", "evaluation.scorers=[strict]",
                       "model.model_name=my/model", "evaluation.resume=false"])
    assert cfg.generation.temperature == 0.0 and isinstance(cfg.evaluation.limit, int)
    assert cfg.evaluation.scorers == ["strict"] and cfg.model.model_name == "my/model"
    assert cfg.evaluation.resume is False


def test_set_unknown_key_and_bad_value():
    with pytest.raises(ConfigError, match=r"--set generation.temp: unknown key 'temp' — did you mean"):
        load_config(EvalConfig, PRESET_DIR / "robovqa.yaml", ["generation.temp=1"])
    with pytest.raises(ConfigError, match=r"^--set evaluation.batch_size: key 'evaluation.batch_size'.*'many'"):
        load_config(EvalConfig, PRESET_DIR / "robovqa.yaml", ["evaluation.batch_size=many"])  # the flag, not the file
    with pytest.raises(ConfigError, match=r"^--set frames: key 'frames.fps'.*"):
        load_config(EvalConfig, PRESET_DIR / "robovqa.yaml", ["frames={fps: -1}"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(EvalConfig, PRESET_DIR / "robovqa.yaml", ["generation.temperature"])


def test_a_frames_section_changes_only_the_keys_it_sets():
    from reasonkit.synth.benchmark import FRAME_SPEC
    from reasonkit.train.recipe import load_recipe

    recipe = load_recipe(PRESET_DIR.parent / "recipes" / "synthphys-sft.toml", ["frames.max_frames=4"])
    spec = recipe.frame_spec()  # the synthphys dataset's spec (the recipe has no [frames]) with max_frames 4
    assert (spec.fps, spec.min_pixels, spec.max_pixels, spec.max_frames) == (
        FRAME_SPEC.fps, FRAME_SPEC.min_pixels, FRAME_SPEC.max_pixels, 4)
    cfg = load_config(EvalConfig, PRESET_DIR / "synthphys.yaml", ["frames.fps=1"])
    assert cfg.frames.to_spec(FRAME_SPEC) == dataclasses.replace(FRAME_SPEC, fps=1.0)
