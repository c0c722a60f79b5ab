"""The plugin manager: discover entry points once, collect registrations, look them up by kind and name.

Registration is lazy: plugins hand over import paths, which are resolved only when a lookup needs them.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from reasonkit import hookspecs
from reasonkit.errors import PluginError
from reasonkit.types import Backend, Benchmark, Scorer, Uploader

ENTRY_POINT_GROUP = "reasonkit"


@dataclass
class Registration:
    kind: str
    name: str
    target: Any
    plugin: str  # entry-point name (what REASONKIT_DISABLE_PLUGINS takes)
    distribution: str  # the installed package that provides it
    version: str
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """The registered object, importing a ``"module:attr"`` path on first use."""
        if isinstance(self.target, str):
            self.target = self._import(self.target)
        return self.target

    def options_model(self) -> Any:
        """The pydantic model registered as ``options=`` (the keys the plugin takes in a recipe), or None. An import
        path is imported on first use, like the target, so discovery stays free of pydantic."""
        model = self.meta.get("options")
        if isinstance(model, str):
            model = self.meta["options"] = self._import(model)
        return model

    def _import(self, path: str) -> Any:
        module_name, _, attr = path.partition(":")
        try:
            obj = importlib.import_module(module_name)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.kind[:-1]} '{self.name}' from {self.distribution}: cannot import '{path}' ({exc})"
            ) from exc
        return obj


class Plugins:
    """All registrations of one plugin-manager build. Use :func:`get_plugins` for the process-wide one."""

    def __init__(self, pm: pluggy.PluginManager, dists: dict[str, tuple[str, str]]):
        self.pm = pm
        self.registry: dict[str, dict[str, Registration]] = {kind: {} for kind in hookspecs.KINDS}
        # (kind, name) -> why it cannot be used. A clash breaks only lookups of that name, never `--help` or
        # `reasonkit plugins`, which is where the user goes to find out which packages collide.
        self.conflicts: dict[tuple[str, str], str] = {}
        for kind in hookspecs.KINDS:
            hook = getattr(pm.hook, f"reasonkit_register_{kind}")
            for impl in hook.get_hookimpls():
                plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
                dist, version = dists.get(plugin_name, ("(not installed)", ""))
                impl.function(register=self._registrar(kind, plugin_name, dist, version))

    def _registrar(self, kind: str, plugin: str, dist: str, version: str) -> hookspecs.Register:
        def register(name: str, target: Any, **meta: Any) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin '{plugin}' ({dist}) registered a {kind[:-1]} without a name")
            existing = self.registry[kind].get(name)
            if existing is not None:
                earlier = self.conflicts.get((kind, name))
                self.conflicts[(kind, name)] = (
                    f"{earlier} and by {dist} (plugin '{plugin}')" if earlier else
                    f"duplicate {kind[:-1]} name '{name}': registered by {existing.distribution} "
                    f"(plugin '{existing.plugin}') and by {dist} (plugin '{plugin}'); uninstall one or disable it "
                    f"with REASONKIT_DISABLE_PLUGINS")
                return
            self.registry[kind][name] = Registration(kind, name, target, plugin, dist, version, meta)

        return register

    def names(self, kind: str) -> list[str]:
        return sorted(self.registry[kind])

    def registration(self, kind: str, name: str) -> Registration:
        if kind not in self.registry:
            raise PluginError(f"unknown plugin kind '{kind}'; kinds are: {', '.join(hookspecs.KINDS)}")
        if (kind, name) in self.conflicts:
            raise PluginError(self.conflicts[(kind, name)])
        try:
            return self.registry[kind][name]
        except KeyError:
            raise PluginError(unknown_name_message(kind[:-1], name, self.names(kind))) from None

    def get(self, kind: str, name: str) -> Any:
        """The loaded target registered under ``name`` for ``kind`` (e.g. a class or a function)."""
        return self.registration(kind, name).load()

    def all(self) -> list[Registration]:
        return [reg for kind in hookspecs.KINDS for reg in self.registry[kind].values()]


def unknown_name_message(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" — did you mean '{close[0]}'?" if close else ""
    return f"unknown {what} '{name}'{hint} Known: {', '.join(known) or '(none)'}"


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def build_plugins(extra: list[tuple[str, Any]] | None = None) -> Plugins:
    """Build a fresh manager: add specs → load entry points (honouring the env switches) → check pending.

    ``extra`` registers in-process plugins as ``(name, module_or_object)`` (used by tests and embedders).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = _env_list("REASONKIT_DISABLE_PLUGINS") or set()
    only = _env_list("REASONKIT_LOAD_PLUGINS")
    dists: dict[str, tuple[str, str]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in disabled or (only is not None and ep.name not in only):
            continue
        if pm.has_plugin(ep.name):
            # Two installed distributions claim the same plugin name.
            other = dists.get(ep.name, ("?", ""))[0]
            this = ep.dist.name if ep.dist else "?"
            raise PluginError(f"duplicate plugin name '{ep.name}': provided by {other} and by {this}")
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must say which one it is
            dist = ep.dist.name if ep.dist else "?"
            raise PluginError(f"plugin '{ep.name}' from {dist} failed to import: {exc}") from exc
        pm.register(plugin, name=ep.name)
        dists[ep.name] = (ep.dist.name, ep.dist.version) if ep.dist else ("?", "")
    for name, plugin in extra or []:
        pm.register(plugin, name=name)
        dists[name] = ("(in-process)", "")
    pm.check_pending()
    return Plugins(pm, dists)


_PLUGINS: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide plugin registry, built on first use."""
    global _PLUGINS
    if _PLUGINS is None:
        _PLUGINS = build_plugins()
    return _PLUGINS


def reset_plugins(plugins: Plugins | None = None) -> None:
    """Drop (or replace) the process-wide registry; tests use this for a fresh manager each."""
    global _PLUGINS
    _PLUGINS = plugins


# Typed lookups used by the rest of the code base. Each checks its target against the contract documented on its
# hook in reasonkit.hookspecs, so a broken plugin fails at lookup with its name, not deep inside a run.
def _check(kind: str, name: str, obj: Any, *, methods: tuple[str, ...] = (), attrs: tuple[str, ...] = (),
           what: str = "target") -> Any:
    missing = [f"{m}()" for m in methods if not callable(getattr(obj, m, None))]
    missing += [a for a in attrs if not hasattr(obj, a)]
    if missing:
        reg = get_plugins().registration(kind, name)
        raise PluginError(f"{kind[:-1]} '{name}' from {reg.distribution}: its {what} has no {', '.join(missing)} "
                          f"(the contract is documented in reasonkit.hookspecs.reasonkit_register_{kind})")
    return obj


def _callable(kind: str, name: str) -> Any:
    target = get_plugins().get(kind, name)
    if not callable(target):
        reg = get_plugins().registration(kind, name)
        raise PluginError(f"{kind[:-1]} '{name}' from {reg.distribution}: target {target!r} is not callable "
                          f"(see reasonkit.hookspecs.reasonkit_register_{kind})")
    return target


def get_benchmark(name: str) -> Benchmark:
    return _check("benchmarks", name, _callable("benchmarks", name)(), methods=("load",),
                  attrs=("name", "frame_spec"), what="benchmark")


def get_scorer(name: str) -> Scorer:
    return _check("scorers", name, _callable("scorers", name)(), methods=("score",), attrs=("name",),
                  what="scorer")


def get_backend_factory(name: str) -> Callable[..., Backend]:
    factory = _callable("backends", name)
    if isinstance(factory, type):  # a class: its instances must generate and close
        _check("backends", name, factory, methods=("generate", "close"), what="backend class")
    return factory


def get_reward(name: str) -> Callable[..., Any]:
    """A reward function; ``scorer:NAME`` derives one from any registered scorer."""
    plugins = get_plugins()
    scorer = name.removeprefix("scorer:") if name.startswith("scorer:") else None
    if scorer is not None and scorer in plugins.names("scorers"):
        from reasonkit.scoring.rewards import reward_from_scorer

        return reward_from_scorer(get_scorer(scorer))
    if scorer is None and name in plugins.names("rewards"):
        return _callable("rewards", name)
    # Both spellings are candidates, so 'upstream' suggests 'scorer:upstream' and the list shows the scorer form.
    known = plugins.names("rewards") + [f"scorer:{s}" for s in plugins.names("scorers")]
    raise PluginError(unknown_name_message("reward", name, known))


def get_trainer(name: str) -> Callable[..., Any]:
    """A trainer: called with the validated :class:`reasonkit.train.recipe.Recipe`."""
    return _callable("trainers", name)


def get_rollout_factory(name: str) -> Callable[..., Any]:
    """A GRPO rollout engine: called with a :class:`reasonkit.train.grpo.rollout.RolloutSetup`."""
    factory = _callable("rollouts", name)
    if isinstance(factory, type):  # a class: its instances must sample, sync and close
        _check("rollouts", name, factory, methods=("sample", "sync", "close"), what="rollout class")
    return factory


def get_dataset(name: str) -> Callable[..., Any]:
    return _callable("datasets", name)


def get_uploader_factory(name: str) -> Callable[..., Uploader]:
    factory = _callable("uploaders", name)
    if isinstance(factory, type):
        _check("uploaders", name, factory, methods=("upload",), what="uploader class")
    return factory
