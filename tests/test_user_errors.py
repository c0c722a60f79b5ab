"""Bad input ends as one line naming what is wrong and exit 2, fast: files that are not UTF-8, unknown rewards,
a hub id that cannot be fetched, paths that lead out of the data directory through a symlink."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from helpers import make_upstream_benchmark

from reasonkit import cli
from reasonkit.errors import DataError, PluginError

BAD = "ok so far \u00e9 then ".encode() + b"\xff\xfe" + b" rest"
OFFSET = BAD.index(b"\xff")
QA = {"question": "Is it moving?", "index2ans": {"A": "yes", "B": "no"}, "answer": "A"}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ---- files that are not UTF-8 ------------------------------------------------------------------------------
def test_non_utf8_recipe_preset_and_annotation_are_one_line_naming_file_and_offset(tmp_path, capsys):
    recipe = tmp_path / "recipe.toml"
    recipe.write_bytes(b"[train]\n# " + BAD)
    assert cli.main(["train", "sft", "--config", str(recipe)]) == 2
    line = one_error_line(capsys)
    assert f"{recipe}: not UTF-8 text (invalid byte 0xff at offset {OFFSET + 10})" in line

    preset = tmp_path / "preset.yaml"
    preset.write_bytes(BAD)
    assert cli.main(["eval", "--config", str(preset)]) == 2
    assert f"{preset}: not UTF-8 text (invalid byte 0xff at offset {OFFSET})" in one_error_line(capsys)

    root = make_upstream_benchmark(tmp_path / "data", "robovqa", [{"video": "clips/a.mp4", "qa_pairs": QA}], {})
    annotation = root / "robovqa_benchmark_qa_pairs.json"
    annotation.write_bytes(b'[{"video": "clips/a.mp4", "note": "' + BAD + b'"}]')
    assert cli.main(["eval", "robovqa", "--data-dir", str(tmp_path / "data"), "--results-dir",
                     str(tmp_path / "results")]) == 2
    offset = annotation.read_bytes().index(b"\xff")
    assert f"{annotation}: not UTF-8 text (invalid byte 0xff at offset {offset})" in one_error_line(capsys)


def test_non_utf8_training_rows_name_the_file(tmp_path):
    from reasonkit.plugins import get_dataset

    sft = tmp_path / "sft.jsonl"
    sft.write_bytes(json.dumps({"conversations": [{"role": "assistant", "content": "x"}]}).encode() + b"\n" + BAD)
    rl = tmp_path / "rl.json"
    rl.write_bytes(b"[" + BAD + b"]")
    for name, file, offset in (("sft-json", sft, sft.read_bytes().index(b"\xff")), ("rl-json", rl, OFFSET + 1)):
        with pytest.raises(DataError) as err:
            get_dataset(name)(str(file))
        assert str(err.value) == f"{file}: not UTF-8 text (invalid byte 0xff at offset {offset})"


def test_utf8_with_bom_is_read(tmp_path):
    from reasonkit.config import EvalConfig, load_config

    preset = tmp_path / "bom.yaml"
    preset.write_bytes(b"\xef\xbb\xbfdatasets: [robovqa]\n")
    assert load_config(EvalConfig, preset).datasets == ["robovqa"]


# ---- rewards -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, suggestion", [("upstream", "scorer:upstream"), ("formt", "format"),
                                              ("scorer:upstrem", "scorer:upstream")])
def test_unknown_reward_suggests_and_lists_scorer_forms(name, suggestion):
    from reasonkit.plugins import get_reward

    with pytest.raises(PluginError) as err:
        get_reward(name)
    message = str(err.value)
    assert f"unknown reward '{name}' — did you mean '{suggestion}'?" in message
    assert "format" in message and "scorer:upstream" in message and "scorer:strict" in message
    assert callable(get_reward("scorer:strict")) and callable(get_reward("format"))


# ---- hub ids -----------------------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_mistyped_hub_id_fails_fast_naming_it(network, tmp_path):
    make_upstream_benchmark(tmp_path / "data", "robovqa", [{"video": "clips/a.mp4", "qa_pairs": QA}], {})
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HUB_CACHE"] = str(tmp_path / "empty-cache")
    if network == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    else:  # no offline switch, but nothing answers: transformers alone retried every file for ~145 s
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "reasonkit", "eval", "robovqa", "--model", "nvidia/Cosmos-Reason1-7X",
                           "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "results")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 30
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'nvidia/Cosmos-Reason1-7X'" in lines[0], lines
    assert ("offline" if network == "offline" else "unreachable") in lines[0]


def test_hub_id_that_is_not_an_id_is_one_line():
    from reasonkit.backends.loading import check_model_dir
    from reasonkit.errors import ReasonkitError

    with pytest.raises(ReasonkitError, match="neither a local folder nor a Hugging Face Hub id"):
        check_model_dir("bad id!")


# ---- symlinks ----------------------------------------------------------------------------------------------
def test_clip_behind_a_symlink_out_of_the_data_dir_says_symlink(tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = make_upstream_benchmark(tmp_path / "data", "robovqa", [{"video": "clips/a.mp4", "qa_pairs": QA}], {})
    (root / "clips").symlink_to(outside)
    assert cli.main(["eval", "robovqa", "--data-dir", str(tmp_path / "data"), "--results-dir",
                     str(tmp_path / "results")]) == 2
    line = one_error_line(capsys)
    assert "'clips/a.mp4'" in line and f"{root / 'clips'} is a symlink to {outside}" in line, line

    from reasonkit.upstream_format import safe_join

    with pytest.raises(DataError, match="escapes the data directory"):  # no link involved: the old wording
        safe_join(root, "../../x.mp4", what="w")


def test_archive_written_through_a_symlinked_folder_names_the_symlink(tmp_path):
    import tarfile

    from reasonkit.data.extract import UnsafeArchiveError, extract_archive

    (tmp_path / "outside").mkdir()
    (tmp_path / "repo").mkdir()
    (tmp_path / "x.mp4").write_bytes(b"x")
    archive = tmp_path / "repo" / "clips.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "x.mp4", arcname="clips/x.mp4")
    (tmp_path / "repo" / "clips").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafeArchiveError) as err:
        extract_archive(archive)
    assert f"({tmp_path / 'repo' / 'clips'} is a symlink)" in str(err.value)
    assert not list((tmp_path / "outside").iterdir())

