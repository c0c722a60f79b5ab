"""The built wheel is a working install on its own: presets and recipes ship inside it, and the CLI finds them
(and the built-in plugins) with the source checkout out of the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed with pip into a bare target folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("reasonkit-*.whl")
    target = tmp / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return target


def run_installed(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Python with the target folder first on sys.path (its dist-info shadows the editable install's, since
    entry points are deduplicated by distribution name, first on sys.path winning), run outside the repo."""
    env = {**os.environ, "PYTHONPATH": str(target), "COLUMNS": "200"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


RESOLVE = """
import reasonkit, reasonkit_benchmarks
from reasonkit.config import EvalConfig, load_config, preset_path, recipe_path
from reasonkit.train.recipe import load_recipe
preset, recipe = preset_path("embodied-reasoning"), recipe_path("synthphys-sft")
print(reasonkit.__file__, reasonkit_benchmarks.__file__, preset, recipe, sep="\\n")
print(",".join(load_config(EvalConfig, preset).datasets))
print(load_recipe("synthphys-sft").train.train_policy.type)
"""


def test_installed_wheel_ships_presets_recipes_and_plugins(installed, tmp_path):
    res = run_installed(installed, tmp_path, "-c", RESOLVE)
    assert res.returncode == 0, res.stderr
    module, plugin_module, preset, recipe, datasets, policy = res.stdout.split("\n")[:6]
    for path in (module, plugin_module, preset, recipe):
        assert Path(path).is_relative_to(installed), path  # nothing comes from the checkout
    assert Path(preset).name == "embodied-reasoning.yaml" and Path(preset).is_file()
    assert Path(recipe).name == "synthphys-sft.toml" and Path(recipe).is_file()
    assert datasets == "bridgev2,robovqa,agibot,holoassist,av,robofail"  # the preset's list, not in-code defaults
    assert policy == "sft"

    res = run_installed(installed, tmp_path, "-m", "reasonkit", "eval", "--config", "embodied-reasoning", "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage: reasonkit eval" in res.stdout

    res = run_installed(installed, tmp_path, "-m", "reasonkit", "plugins")
    assert res.returncode == 0, res.stderr
    for name in ("robovqa", "synthphys", "sft-json", "upstream", "format", "hf", "sft", "grpo", "s3"):
        assert f" {name} " in res.stdout, name


def test_recipe_names_resolve_to_shipped_recipes(tmp_path, monkeypatch):
    from reasonkit.config import RECIPE_DIR, recipe_path
    from reasonkit.errors import ConfigError

    assert recipe_path("synthphys-sft") == RECIPE_DIR / "synthphys-sft.toml"
    assert recipe_path("qwen2.5-vl-3b-sft").is_file()  # a dot in the name is not a file suffix
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthphys-sft").write_text("")  # an existing file always wins over a shipped name
    assert recipe_path("synthphys-sft") == Path("synthphys-sft")
    assert recipe_path("mine.toml") == Path("mine.toml")  # a path: read_file names it if it is missing
    with pytest.raises(ConfigError, match="did you mean 'synthphys-grpo'.*shipped: cosmos-reason1-7b-grpo"):
        recipe_path("synthphys-grp")
