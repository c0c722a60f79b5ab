"""Plugin discovery, registration, lookups, and the rule that every hook is documented and tested."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel, ConfigDict, Field

from reasonkit import hookspecs
from reasonkit.errors import PluginError
from reasonkit.hookspecs import hookimpl
from reasonkit.plugins import build_plugins
from reasonkit.train.grpo.rollout import Rollout
from reasonkit.types import FrameSpec, GenRequest, GenResult, Judgement, Sample

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


# ---- every hook: documented, and a test named after it that registers through it (datasette's rule) ----------
def _plugins_with(fresh_plugins, kind: str, **targets):
    """A fresh registry with an in-process plugin registering ``targets`` (name -> target) through ``kind``'s hook."""
    class One:
        pass

    def hook(self, register):
        for name, target in targets.items():
            register(name, target, description="d")

    setattr(One, f"reasonkit_register_{kind}", hookimpl(hook))
    plugins = build_plugins(extra=[("one", One())])
    fresh_plugins.reset_plugins(plugins)
    return plugins


def test_every_hook_is_documented():
    assert sorted(HOOKS) == sorted(f"reasonkit_register_{k}" for k in hookspecs.KINDS)
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Target:" in doc, f"{name} must document what its target is"
        sig = inspect.signature(getattr(hookspecs, name))
        assert list(sig.parameters) == ["register"], name


def test_every_hook_has_a_test_named_after_it():
    missing = [name for name in HOOKS if not callable(globals().get(f"test_{name}"))]
    assert missing == [], f"add a test named test_<hook> for: {missing}"


class _Bench:
    name = "mini"
    frame_spec = FrameSpec(fps=1.0)

    def load(self, data_dir):
        return [Sample(id="a#0", dataset="mini", video=None, question="q", choices={"A": "x"}, answer="A")]


class _NoLoad:
    name = "broken"
    frame_spec = FrameSpec()


def test_reasonkit_register_benchmarks(fresh_plugins):
    plugins = _plugins_with(fresh_plugins, "benchmarks", mini=_Bench, broken=_NoLoad)
    reg = plugins.registration("benchmarks", "mini")
    assert reg.meta == {"description": "d"} and reg.distribution == "(in-process)"
    assert fresh_plugins.get_benchmark("mini").load(None)[0].id == "a#0"
    with pytest.raises(PluginError, match=r"benchmark 'broken' from \(in-process\): its benchmark has no load\(\)"):
        fresh_plugins.get_benchmark("broken")


def test_reasonkit_register_datasets(fresh_plugins):
    def rows(source, *, subset=None, split=None, column="conversations"):
        return [{"video": None, column: [{"role": "user", "content": source}]}]

    _plugins_with(fresh_plugins, "datasets", mine=rows, bad=42)
    assert fresh_plugins.get_dataset("mine")("hello", split="sft")[0]["conversations"][0]["content"] == "hello"
    with pytest.raises(PluginError, match="dataset 'bad' .* is not callable"):
        fresh_plugins.get_dataset("bad")


class _FirstLetter:
    name = "first"

    def score(self, output, sample, answer_type):
        letter = output[:1] or None
        return Judgement(extracted=letter, correct=letter == sample.answer)


class _NoScore:
    name = "noscore"


def test_reasonkit_register_scorers(fresh_plugins):
    _plugins_with(fresh_plugins, "scorers", first=_FirstLetter, noscore=_NoScore)
    sample = _Bench().load(None)[0]
    assert fresh_plugins.get_scorer("first").score("A.", sample, "letter").correct
    assert fresh_plugins.get_reward("scorer:first")("A.", "A", sample=sample, answer_type="letter")[0] == 1.0
    with pytest.raises(PluginError, match="its scorer has no score"):
        fresh_plugins.get_scorer("noscore")


def test_reasonkit_register_rewards(fresh_plugins):
    _plugins_with(fresh_plugins, "rewards", short=lambda completion, reference, **_: float(len(completion) < 3),
                  bad=3)
    assert fresh_plugins.get_reward("short")("ab", "A") == 1.0
    with pytest.raises(PluginError, match="reward 'bad' .* is not callable"):
        fresh_plugins.get_reward("bad")


class _EchoBackend:
    def __init__(self, model, **options):
        self.model = model

    def generate(self, requests):
        return [GenResult(texts=[f"{self.model}:{len(r.messages)}"]) for r in requests]

    def close(self):
        pass


class _NoClose:
    def __init__(self, model, **options):
        pass

    def generate(self, requests):
        return []


def test_reasonkit_register_backends(fresh_plugins):
    _plugins_with(fresh_plugins, "backends", echo=_EchoBackend, noclose=_NoClose)
    backend = fresh_plugins.get_backend_factory("echo")("m")
    assert backend.generate([GenRequest(messages=[{"role": "user", "content": "hi"}])])[0].texts == ["m:1"]
    with pytest.raises(PluginError, match=r"its backend class has no close\(\)"):
        fresh_plugins.get_backend_factory("noclose")


def test_reasonkit_register_trainers(fresh_plugins, tmp_path):
    from reasonkit import cli
    from reasonkit.train.recipe import Recipe

    seen = []
    plugins = _plugins_with(fresh_plugins, "trainers", mine=seen.append)
    plugins.registry["trainers"]["mine"].meta["policy_type"] = "sft"
    recipe = tmp_path / "r.toml"
    recipe.write_text('[train]\noutput_dir = "%s"\n[train.train_policy]\ntype = "sft"\ndataset.name = "x"\n'
                      % (tmp_path / "out"))
    assert cli.main(["train", "mine", "--config", str(recipe)]) == 0
    assert len(seen) == 1 and isinstance(seen[0], Recipe)  # the validated recipe, not a dict
    recipe.write_text(recipe.read_text().replace('type = "sft"', 'type = "grpo"') + "[rollout]\nn_generation = 2\n")
    assert cli.main(["train", "mine", "--config", str(recipe)]) == 2 and len(seen) == 1


class _CountOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = "#"
    repeat: int = Field(1, ge=1)


class _CountRollout(Rollout):
    """Texts are the options' prefix repeated; the first completion of a prompt stops (token 2), the others do not."""

    def generate(self, requests):
        opts = self.setup.options
        return [GenResult(texts=[opts.prefix * opts.repeat] * r.n,
                          token_ids=[[7, 2 if k == 0 else 8, 9, 9] for k in range(r.n)]) for r in requests]


class _NoSample:
    def __init__(self, setup):
        pass


def test_reasonkit_register_rollouts(fresh_plugins, tmp_path):
    from types import SimpleNamespace

    from reasonkit.errors import ConfigError
    from reasonkit.train.grpo.rollout import make_rollout, rollout_engine
    from reasonkit.train.recipe import load_recipe

    plugins = _plugins_with(fresh_plugins, "rollouts", count=_CountRollout, plain=_CountRollout,
                             nosample=_NoSample)
    plugins.registry["rollouts"]["count"].meta["options"] = _CountOptions
    path = tmp_path / "r.toml"
    path.write_text('[train]\noutput_dir = "%s"\n[train.train_policy]\ntype = "grpo"\ndataset.name = "x"\n'
                    '[rollout]\nbackend = "count"\nn_generation = 2\nmax_response_length = 3\n'
                    '[rollout.options]\nprefix = "ab"\n' % (tmp_path / "out"))
    recipe = load_recipe(path, ["rollout.options.repeat=2"])
    engine = SimpleNamespace(module=SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=2)))
    processor = SimpleNamespace(tokenizer=SimpleNamespace(eos_token_id=None))
    rollout = make_rollout(recipe, engine=engine, processor=processor, dist=None, out_dir=tmp_path)
    prompt = SimpleNamespace(messages=[{"role": "user", "content": "q"}], frames=None)
    completions = rollout.sample([prompt], seed=0)
    assert [(c.prompt, c.token_ids, c.text, c.truncated) for c in completions] == [
        (0, [7, 2], "abab", False), (0, [7, 8, 9], "abab", True)]  # cut after the stop / at max_response_length

    path.write_text(path.read_text().replace("prefix =", "prefx ="))
    with pytest.raises(ConfigError, match=r"r.toml: unknown key 'rollout.options.prefx' — did you mean 'prefix'"):
        rollout_engine(load_recipe(path))
    with pytest.raises(ConfigError, match=r"--set rollout.options.repeat: key 'rollout.options.repeat': Input "
                                          r"should be greater than or equal to 1 \(got 0\)"):
        rollout_engine(load_recipe(path, ["rollout.options.repeat=0"]))
    with pytest.raises(ConfigError, match=r"^rollout.options.prefx: rollout engine 'plain' takes no options$"):
        rollout_engine(load_recipe(path, ["rollout.backend=plain"]))
    with pytest.raises(PluginError, match=r"rollout 'nosample' from \(in-process\): its rollout class has no "
                                          r"sample\(\), sync\(\), close\(\)"):
        rollout_engine(load_recipe(path, ["rollout.backend=nosample", "rollout.options={}"]))
    with pytest.raises(ConfigError, match=r"rollout.backend = 'vlm': GRPO rollouts support 'count', 'hf', "
                                          r"'nosample', 'plain' and 'vllm' \(.*\) — did you mean 'vllm'\?"):
        rollout_engine(load_recipe(path, ["rollout.backend=vlm", "rollout.options={}"]))


class _FolderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: Path
    suffix: str = ""


class _Folder:
    """Writes, for each upload, a file listing the uploaded folder's top-level names at ``root / dest``."""

    def __init__(self, *, root, suffix=""):
        self.root, self.suffix = Path(root), suffix

    def upload(self, folder, dest):
        target = self.root / f"{dest}{self.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(",".join(sorted(p.name for p in Path(folder).iterdir())))
        return str(target)


class _NoUpload:
    def __init__(self, **options):
        pass


def test_reasonkit_register_uploaders(fresh_plugins, tmp_path, tiny_model_dir, synth_data_dir):
    from reasonkit.errors import ConfigError
    from reasonkit.train.recipe import load_recipe

    plugins = _plugins_with(fresh_plugins, "uploaders", folder=_Folder, noupload=_NoUpload)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.safetensors").write_bytes(b"")
    where = fresh_plugins.get_uploader_factory("folder")(root=tmp_path).upload(tmp_path / "src", "listing")
    assert Path(where).read_text() == "model.safetensors"
    with pytest.raises(PluginError, match=r"its uploader class has no upload\(\)"):
        fresh_plugins.get_uploader_factory("noupload")

    # a recipe's [[train.ckpt.upload]] entry uploads through it: a real tiny SFT run, its options validated
    test_checkpoint_training = pytest.importorskip("test_checkpoint_training")  # the tiny SFT recipe (DeepSpeed)
    plugins.registry["uploaders"]["folder"].meta["options"] = _FolderOptions
    path, root = tmp_path / "sft.toml", tmp_path / "bucket"
    recipe = test_checkpoint_training.RECIPE.format(out=tmp_path / "run", data=synth_data_dir, model=tiny_model_dir)
    path.write_text(f'{recipe}[[train.ckpt.upload]]\nname = "folder"\nwhen = "all"\n'
                    f'options = {{root = "{root}", suffix = ".txt"}}\n')
    recipe = load_recipe(path, ["train.max_steps=2", "train.ckpt.export_safetensors=final"])
    assert fresh_plugins.get_trainer("sft")(recipe) == tmp_path / "run" / "final"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.txt")) == [
        "checkpoints/step_000001.txt", "checkpoints/step_000002.txt", "final.txt"]
    assert "config.json" in (root / "final.txt").read_text().split(",")
    assert "complete.json" in (root / "checkpoints" / "step_000002.txt").read_text().split(",")

    path.write_text(path.read_text().replace("suffix =", "sufix ="))
    with pytest.raises(ConfigError, match=r"sft.toml: unknown key 'train.ckpt.upload.0.options.sufix' — did you "
                                          r"mean 'suffix'\?$"):
        load_recipe(path)
    path.write_text(path.read_text().replace('name = "folder"', 'name = "foldr"'))
    with pytest.raises(ConfigError, match=r"sft.toml: train.ckpt.upload.0: unknown uploader 'foldr' — did you "
                                          r"mean 'folder'\? Known: folder, hf, noupload, s3$"):
        load_recipe(path)


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


def test_reasonkit_register_commands(capsys, fresh_plugins):
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
