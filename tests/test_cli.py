"""The CLI's contracts: every usage error is click's two-line usage message and exit 2 (never a traceback), help
texts name what is installed, and a plugin name clash breaks only the lookups of that name."""

from __future__ import annotations

import re

import pytest

from reasonkit import cli
from reasonkit.hookspecs import hookimpl
from reasonkit.plugins import build_plugins


@pytest.mark.parametrize("argv", [
    ["train", "sft"],                          # missing required option
    ["infer"],
    ["score"],                                 # missing argument
    ["eval", "robovqa", "--limit", "abc"],     # a value of the wrong type
    ["eval", "--bogus"],                       # unknown option
    ["evl"],                                   # mistyped command
    ["train", "nope", "--config", "x.toml"],   # unknown trainer
])
def test_usage_errors_print_usage_and_exit_2_without_a_traceback(argv, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("Usage: reasonkit") and "\nError: " in err
    assert len(err.strip().splitlines()) <= 4


def test_an_option_without_its_value_is_a_usage_error(capsys):
    assert cli.main(["synth", "model", "--out"]) == 2  # click reports this one without the usage line
    err = capsys.readouterr().err
    assert err.strip() == "Error: Option '--out' requires an argument."


def test_mistyped_command_suggests_the_right_one(capsys):
    assert cli.main(["evl"]) == 2
    assert "Did you mean 'eval'?" in capsys.readouterr().err


def test_train_help_is_the_trainers_own(capsys):
    assert cli.main(["train", "sft", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Supervised fine-tuning" in out and "--config" in out and "train.overwrite" in out
    assert cli.main(["train", "grpo", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "GRPO" in out and "Supervised fine-tuning" not in out


def test_eval_help_lists_benchmarks_and_describes_every_option(capsys):
    assert cli.main(["eval", "--help"]) == 0
    out = " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())  # rich wraps inside its boxes
    for name in ("robovqa", "av", "synthphys"):
        assert name in out
    assert "Questions per generate call" in out and "Sampling seed" in out


class _Clash:
    @hookimpl
    def reasonkit_register_benchmarks(self, register):
        register("robovqa", lambda: None)


def test_a_name_clash_breaks_only_that_name(fresh_plugins, capsys, tmp_path):
    fresh_plugins.reset_plugins(build_plugins(extra=[("clash", _Clash())]))
    assert cli.main(["--help"]) == 0
    assert cli.main(["eval", "--help"]) == 0
    capsys.readouterr()
    assert cli.main(["plugins"]) == 2  # the table is printed, then the clash, then exit 2
    captured = capsys.readouterr()
    assert "synthphys" in captured.out
    assert "duplicate benchmark name 'robovqa'" in captured.err and "(in-process)" in captured.err
    assert cli.main(["eval", "robovqa", "--data-dir", str(tmp_path), "--model", str(tmp_path)]) == 2
    assert "duplicate benchmark name 'robovqa'" in capsys.readouterr().err
    assert fresh_plugins.get_plugins().get("benchmarks", "synthphys") is not None  # other names still resolve
