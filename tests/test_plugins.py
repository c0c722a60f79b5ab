"""Plugin discovery, registration, lookups, and the rule that every hook is documented and tested."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from reasonkit import hookspecs
from reasonkit.errors import PluginError
from reasonkit.hookspecs import hookimpl
from reasonkit.plugins import build_plugins

REPO = Path(__file__).resolve().parent.parent
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if name.startswith("reasonkit_register_")]


def test_builtin_plugins_are_discovered_through_entry_points(fresh_plugins):
    plugins = fresh_plugins.get_plugins()
    assert {"av", "robovqa", "agibot", "bridgev2", "holoassist", "robofail", "synthphys"} <= set(
        plugins.names("benchmarks"))
    assert {"upstream", "strict"} <= set(plugins.names("scorers"))
    assert {"hf", "vllm"} <= set(plugins.names("backends"))
    reg = plugins.registration("benchmarks", "robovqa")
    assert (reg.distribution, reg.plugin) == ("reasonkit", "benchmarks")
    assert isinstance(reg.target, str), "registration must stay lazy until looked up"
    assert fresh_plugins.get_benchmark("robovqa").name == "robovqa"


def test_unknown_name_suggests_the_closest(fresh_plugins):
    with pytest.raises(PluginError, match=r"unknown benchmark 'robovq' — did you mean 'robovqa'\?"):
        fresh_plugins.get_benchmark("robovq")
    with pytest.raises(PluginError, match="Known: .*strict"):
        fresh_plugins.get_scorer("zzz")


class _Dup:
    @hookimpl
    def reasonkit_register_benchmarks(self, register):
        register("robovqa", lambda: None)


def test_duplicate_names_fail_naming_both_packages():
    plugins = build_plugins(extra=[("dup", _Dup())])  # building succeeds: `--help` and `plugins` keep working
    with pytest.raises(PluginError, match=r"duplicate benchmark name 'robovqa'.*reasonkit.*\(in-process\)"):
        plugins.get("benchmarks", "robovqa")
    assert list(plugins.conflicts) == [("benchmarks", "robovqa")]


def test_disable_and_load_only(monkeypatch):
    monkeypatch.setenv("REASONKIT_DISABLE_PLUGINS", "scoring, backends")
    plugins = build_plugins()
    assert plugins.names("scorers") == [] and plugins.names("backends") == []
    assert "robovqa" in plugins.names("benchmarks")
    monkeypatch.delenv("REASONKIT_DISABLE_PLUGINS")
    monkeypatch.setenv("REASONKIT_LOAD_PLUGINS", "scoring")
    plugins = build_plugins()
    assert plugins.names("benchmarks") == [] and "strict" in plugins.names("scorers")


def test_broken_import_path_names_plugin_and_target():
    class Broken:
        @hookimpl
        def reasonkit_register_scorers(self, register):
            register("broken", "no_such_module:Thing")

    plugins = build_plugins(extra=[("broken", Broken())])
    with pytest.raises(PluginError, match="scorer 'broken'.*cannot import 'no_such_module:Thing'"):
        plugins.get("scorers", "broken")


# ---- every hook: documented, and exercised by a test that registers through it -------------------------------
def _register_one(kind: str):
    hook = f"reasonkit_register_{kind}"
    target = object()

    class One:
        pass

    setattr(One, hook, hookimpl(lambda self, register: register(f"x-{kind}", target, description="d")))
    plugins = build_plugins(extra=[("one", One())])
    reg = plugins.registration(kind, f"x-{kind}")
    assert reg.load() is target and reg.meta == {"description": "d"} and reg.distribution == "(in-process)"


@pytest.mark.parametrize("kind", hookspecs.KINDS)
def test_each_hook_registers_and_looks_up(kind):
    _register_one(kind)


def test_every_hook_is_documented():
    assert sorted(HOOKS) == sorted(f"reasonkit_register_{k}" for k in hookspecs.KINDS)
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Target:" in doc, f"{name} must document what its target is"
        sig = inspect.signature(getattr(hookspecs, name))
        assert list(sig.parameters) == ["register"], name


# How a test reaches each kind through the plugin system (called as NAME(...)); a hook kind counts as tested
# when some test file makes that call.
LOOKUPS = {
    "benchmarks": "get_benchmark", "datasets": "get_dataset", "scorers": "get_scorer", "rewards": "get_reward",
    "backends": "get_backend_factory", "trainers": "get_trainer", "uploaders": "get_uploader_factory",
    "commands": "reasonkit_register_commands",
}


def test_every_hook_is_tested():
    """Fails when a hook is added without a lookup here, or when no test uses a plugin of that kind."""
    assert set(LOOKUPS) == set(hookspecs.KINDS), "add the new hook's lookup to LOOKUPS and test it"
    sources = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    untested = [kind for kind, lookup in LOOKUPS.items() if f"{lookup}(" not in sources]
    assert untested == [], f"hook kinds no test looks up: {untested}"


class _Cmd:
    @hookimpl
    def reasonkit_register_commands(self, register):
        sub = typer.Typer()

        @sub.command()
        def hello(name: str):
            print(f"hello {name}")

        @sub.command()
        def bye():
            print("bye")

        register("acme-tools", sub)


def test_plugin_commands_are_mounted(capsys, fresh_plugins):
    from reasonkit import cli

    fresh_plugins.reset_plugins(build_plugins(extra=[("cmd", _Cmd())]))
    assert cli.main(["acme-tools", "hello", "world"]) == 0
    assert "hello world" in capsys.readouterr().out


def test_plugins_command_json(capsys, fresh_plugins):
    from reasonkit import cli

    assert cli.main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"kind": "benchmark", "name": "robovqa", "distribution": "reasonkit"}.items() <= rows[
        [r["name"] for r in rows].index("robovqa")].items()


# ---- a real third-party distribution, installed into this environment -----------------------------------------
@pytest.fixture(scope="module")
def acme_installed():
    pkg = REPO / "plugins" / "acme-reasonkit-plugin"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(pkg)], check=True)
    yield
    subprocess.run([*pip, "uninstall", "-y", "acme-reasonkit-plugin"], check=True)


def test_third_party_plugin_is_listed(acme_installed):
    out = subprocess.run([sys.executable, "-m", "reasonkit", "plugins", "--json"], capture_output=True,
                         text=True, check=True).stdout
    rows = {(r["kind"], r["name"]): r for r in json.loads(out)}
    for key in [("benchmark", "acme-bench"), ("scorer", "acme-last-letter"), ("reward", "acme-brevity")]:
        assert rows[key]["distribution"] == "acme-reasonkit-plugin" and rows[key]["version"] == "0.2.0"


def test_third_party_reward_and_scorer_work(acme_installed, fresh_plugins):
    from reasonkit.types import Sample

    assert fresh_plugins.get_reward("acme-brevity")("x" * 50, "A") == pytest.approx(0.75)
    sample = Sample(id="1", dataset="d", video=None, question="q", choices={"A": "a", "B": "b"}, answer="B")
    assert fresh_plugins.get_scorer("acme-last-letter").score("A then B", sample, "letter").correct
