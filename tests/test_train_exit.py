"""A training run leaves nothing behind: no process-group rendezvous folder in the temp dir, and no torch warning
about a process group that was never destroyed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_sft import write_recipe


def _train(recipe, tmp, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp)}  # tempfile.mkdtemp() writes here
    return subprocess.run([sys.executable, "-m", "reasonkit", "train", "sft", "--config", str(recipe), *extra],
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_sft_run_cleans_up_its_process_group(tiny_model_dir, synth_data_dir, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    recipe = write_recipe(tmp_path / "r.toml", out=tmp_path / "run", data=synth_data_dir, model=tiny_model_dir)
    proc = _train(recipe, tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(tmp.glob("reasonkit-pg-*"))
    assert "destroy_process_group" not in proc.stderr

    # A run that fails once the process group exists (after init_distributed) cleans up as well.
    proc = _train(recipe, tmp, "--set", f"train.output_dir={tmp_path / 'run2'}", "--set",
                  'policy.freeze_pattern=[".*"]')
    assert proc.returncode == 2 and "froze every parameter" in proc.stderr, proc.stderr[-2000:]
    assert not list(tmp.glob("reasonkit-pg-*"))
    assert "destroy_process_group" not in proc.stderr
