"""Every hook a reasonkit plugin can implement — the one file a plugin author needs to read.

A plugin is any importable module (or object) exposed under the ``reasonkit`` entry-point group::

    # pyproject.toml of your package
    [project.entry-points.reasonkit]
    my_plugin = "my_package.reasonkit_plugin"

and implements some of the hooks below with ``@reasonkit.hookimpl``. Every hook has the same shape: it receives
a ``register`` callable and calls it once per thing it provides::

    from reasonkit.hookspecs import hookimpl

    @hookimpl
    def reasonkit_register_benchmarks(register):
        register("mybench", "my_package.bench:MyBenchmark", description="My robot benchmark")

``register(name, target, **meta)``:

- ``name``: the name users type (``reasonkit eval mybench``). Names are unique per kind across all installed
  plugins; a clash is an error naming both packages.
- ``target``: the object, or a lazy ``"module:attribute"`` import path (preferred: discovery then imports
  nothing heavy, and ``reasonkit --help`` stays instant). What the target must be is documented per hook.
- ``meta``: free-form keywords (``description=`` is shown by ``reasonkit plugins``).

Hooks are called once, when the plugin manager is first built, in no guaranteed order.
"""

from __future__ import annotations

from typing import Any, Protocol

import pluggy

PROJECT = "reasonkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callable every ``reasonkit_register_*`` hook receives."""

    def __call__(self, name: str, target: Any, **meta: Any) -> None: ...


@hookspec
def reasonkit_register_benchmarks(register: Register) -> None:
    """Register evaluation benchmarks.

    Target: a zero-argument callable (usually a class) returning a :class:`reasonkit.types.Benchmark`: it has a
    ``name``, a default ``frame_spec`` and ``load(data_dir) -> list[Sample]``. Used by ``reasonkit eval NAME``;
    the preset ``benchmarks/NAME.yaml`` (if any) supplies the default eval config. A benchmark without a preset
    may declare ``eval_defaults``: a preset-shaped dict (``{"generation": {"max_tokens": 256, "max_retries": 2}}``)
    applied over reasonkit's defaults and under ``--set``; without either, ``reasonkit eval`` says so on stderr.
    """


@hookspec
def reasonkit_register_datasets(register: Register) -> None:
    """Register training datasets (SFT conversations or RL question rows).

    Target: a callable ``(source: str | None, *, subset, split, column) -> Iterable[dict]`` yielding
    upstream-format rows (``{"video", "conversations"}`` for SFT, ``{"video", "qa_pairs"}`` for RL). Named by a
    recipe's ``[train.train_policy.dataset]`` section (``name``; ``path`` is the ``source``). The callable may carry
    a ``frame_spec`` attribute (a :class:`reasonkit.types.FrameSpec`): the frames a recipe without ``[frames]``
    trains on (e.g. the spec of the benchmark the dataset belongs to).
    """


@hookspec
def reasonkit_register_scorers(register: Register) -> None:
    """Register answer scorers.

    Target: a zero-argument callable returning an object with ``name`` and
    ``score(output: str, sample: Sample, answer_type: str) -> Judgement`` (see :mod:`reasonkit.types`).
    The eval runner records every registered scorer's judgement selected in the config; rewards can be derived
    from any scorer (``reward = "scorer:NAME"``) so training optimises what eval measures.
    """


@hookspec
def reasonkit_register_rewards(register: Register) -> None:
    """Register GRPO reward functions.

    Target: a callable ``fn(completion: str, reference: str, **context) -> float | tuple[float, dict]``.
    ``context`` holds the sample (``sample=``) and anything the trainer knows (``answer_type=``). Recipes
    combine rewards with weights.
    """


@hookspec
def reasonkit_register_backends(register: Register) -> None:
    """Register generation backends (engines that turn prompts + decoded frames into text).

    Target: a callable ``(model: str, **options) -> Backend`` where Backend has
    ``generate(requests: list[GenRequest]) -> list[GenResult]`` and ``close()``.
    """


@hookspec
def reasonkit_register_trainers(register: Register) -> None:
    """Register trainers (``reasonkit train NAME --config recipe.toml``).

    Target: a callable ``(recipe: reasonkit.train.recipe.Recipe) -> Path | None`` that runs training to completion
    and returns the final export folder (None without one). ``meta`` may name ``policy_type="sft"``: the recipe's
    ``train.train_policy.type`` must then equal it (``reasonkit train NAME`` checks before starting anything).
    """


@hookspec
def reasonkit_register_rollouts(register: Register) -> None:
    """Register GRPO rollout engines: what samples each prompt's G completions (``[rollout] backend = NAME``).

    Target: a callable ``(setup: reasonkit.train.grpo.rollout.RolloutSetup) -> Rollout``, usually a subclass of
    :class:`reasonkit.train.grpo.rollout.Rollout` that implements ``generate(requests: list[GenRequest]) ->
    list[GenResult]`` (token ids included; the base class builds the requests and cuts completions at the stop
    token) and, when the engine holds its own copy of the weights, ``sync(engine, processor)`` (called after every
    optimizer step) and ``close()``. The target's optional ``check(recipe)`` runs before any model loads and raises
    :class:`reasonkit.errors.ConfigError` for a recipe the engine cannot run. ``meta`` may name ``options=`` a
    pydantic model (e.g. a :class:`reasonkit.config.Strict` subclass) or its ``"module:attr"`` import path: the keys
    the engine takes in the recipe's ``[rollout.options]`` table, validated like every other key before training
    starts and handed over as ``setup.options``; an engine without one takes no options.
    """


@hookspec
def reasonkit_register_uploaders(register: Register) -> None:
    """Register checkpoint/export uploaders (HF hub, S3, ...): what a recipe's ``[[train.ckpt.upload]] name = NAME``
    entries upload through.

    Target: a callable ``(**options) -> Uploader`` where Uploader has ``upload(folder: Path, dest: str) -> str``
    returning where the files went. ``meta`` may name ``options=`` a pydantic model (e.g. a
    :class:`reasonkit.config.Strict` subclass, or :func:`reasonkit.config.keyword_options` of the target) or its
    ``"module:attr"`` import path: the keys the uploader takes in an entry's ``options`` table, validated like
    every other key when the recipe loads; the target is called with the validated fields as keywords. An
    uploader without one takes no options. A run uploads its final export to ``dest = "final"`` (``meta``
    ``final_dest=`` changes that; the hub's repo-id destinations use ``""``) and, with ``when = "all"``, each
    complete checkpoint to ``checkpoints/<step_dir>``: destinations under the uploader's own configured root
    (``checkpoints=False`` in ``meta`` refuses ``when = "all"``).
    """


@hookspec
def reasonkit_register_commands(register: Register) -> None:
    """Register extra CLI command groups.

    Target: a ``typer.Typer`` app (or a zero-argument callable returning one); it is mounted as
    ``reasonkit NAME ...``.
    """


KINDS: tuple[str, ...] = (
    "benchmarks", "datasets", "scorers", "rewards", "backends", "trainers", "rollouts", "uploaders", "commands",
)
