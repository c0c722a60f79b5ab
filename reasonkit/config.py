"""Strict config loading: YAML eval presets and TOML training recipes, validated with pydantic.

Every error is one line naming the file (or ``--set``), the dotted key and what was expected, with a
did-you-mean for misspelled keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from reasonkit.errors import ConfigError
from reasonkit.textfile import read_text
from reasonkit.types import FrameSpec, Sampling

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def keyword_options(cls: type) -> type[Strict]:
    """A strict model of ``cls``'s keyword-only constructor arguments (names, types, defaults): the options model
    of a plugin whose keywords are its options, without writing them twice."""
    import inspect

    from pydantic import create_model

    params = inspect.signature(cls, eval_str=True).parameters.values()
    fields = {p.name: (p.annotation, ... if p.default is p.empty else p.default)
              for p in params if p.kind is p.KEYWORD_ONLY}
    return create_model(f"{cls.__name__}Options", __base__=Strict, **fields)


# ---------------------------------------------------------------------------------------------- eval presets
class ModelSection(Strict):
    model_name: str = "nvidia/Cosmos-Reason1-7B"  # hub id or local folder
    revision: str | None = None
    backend: str = "hf"  # a registered backend plugin
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device: str = "auto"  # auto: cuda if present, else cpu
    tp_size: int = Field(1, ge=1)  # tensor parallel size (vllm)
    max_length: int = Field(32768, ge=256)  # max model context (vllm max_model_len)
    attn_implementation: str | None = None
    # the hf backend's generation loop: reasonkit.generation, or transformers `generate`; recorded in the manifest,
    # not part of the results' identity (greedy tokens are equal in fp32)
    engine: Literal["reasonkit", "generate"] = "reasonkit"
    # --- the `openai` backend (any OpenAI-compatible Chat Completions server); see reasonkit/backends/openai.py
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1; None: the openai client's default (api.openai.com)
    api_key_env: str = "OPENAI_API_KEY"  # the NAME of the variable holding the key; the key itself is never stored
    api_dialect: Literal["openai", "vllm"] = "openai"  # vllm: also top_k, repetition_penalty, exact video frames
    frames_as: Literal["images", "video"] = "images"  # video: one frame-sequence video (api_dialect vllm)
    image_format: Literal["jpeg", "png"] = "jpeg"  # png is lossless (what reproduces the local backends exactly)
    jpeg_quality: int = Field(90, ge=1, le=100)
    max_concurrency: int = Field(8, ge=1)  # requests in flight at once
    timeout_s: float = Field(120.0, gt=0)  # per attempt
    max_requests_per_minute: int | None = Field(None, ge=1)
    request_retries: int = Field(6, ge=0)  # attempts after the first on 429/5xx/timeouts/malformed replies
    retry_max_wait_s: float = Field(300.0, ge=0)  # bound on the total backoff time of one request
    price_input_per_mtok: float | None = Field(None, ge=0)  # USD per million prompt tokens (cost in score)
    price_output_per_mtok: float | None = Field(None, ge=0)  # USD per million completion tokens


class FramesSection(Strict):
    """Keys of the frame spec (:class:`reasonkit.types.FrameSpec`, which holds the defaults) to change: a section
    that sets only ``fps`` keeps every other key of the spec it applies to (the benchmark's or dataset's own)."""

    fps: float = Field(FrameSpec.fps, gt=0)
    min_frames: int = Field(FrameSpec.min_frames, ge=1)
    max_frames: int = Field(FrameSpec.max_frames, ge=1)
    min_pixels: int = Field(FrameSpec.min_pixels, ge=28 * 28)
    max_pixels: int = Field(FrameSpec.max_pixels, ge=28 * 28)
    total_pixels: int | None = FrameSpec.total_pixels
    size_factor: int | None = Field(FrameSpec.size_factor, ge=1)  # None: the model's (28 / 32 px)

    def to_spec(self, base: FrameSpec | None = None) -> FrameSpec:
        """``base`` (default: FrameSpec()) with the keys this section sets."""
        return dataclasses.replace(base or FrameSpec(), **{k: getattr(self, k) for k in self.model_fields_set})


class EvaluationSection(Strict):
    answer_type: Literal["reasoning", "letter"] = "reasoning"
    seed: int = 1
    # Several seeds in one pass (each its own result file, the same records as one run per seed): a clip is decoded
    # and its vision features computed once for all of them, and a prompt is prefilled once for its seeds.
    seeds: list[int] | None = None
    batch_size: int = Field(8, ge=1)
    limit: int | None = Field(None, ge=1)  # first N questions (smoke runs)
    retry_errors: bool = False  # on resume, run the error records (missing/broken clips) again, replacing them
    scorers: list[str] = ["upstream", "strict"]  # all are recorded; the first is the headline metric
    resume: bool = True

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError("list one or more distinct seeds")
        return value

    def seed_list(self) -> list[int]:
        """The seeds this run evaluates: ``seeds`` when given (it replaces ``seed``), else ``[seed]``."""
        return list(self.seeds) if self.seeds is not None else [self.seed]


# What each sampling key accepts, declared once; every section that has the key gives it its own default.
MaxTokens = Annotated[int, Field(ge=1)]
Temperature = Annotated[float, Field(ge=0)]
TopP = Annotated[float, Field(gt=0, le=1)]
RepetitionPenalty = Annotated[float, Field(gt=0)]


class SamplingSection(Strict):
    """Base of the sections that sample completions (eval's ``generation:``, a recipe's ``[rollout]``): their keys
    are named as in :class:`reasonkit.types.Sampling`, each section with its own defaults and only the keys it has
    (key names follow upstream's configs, so the sections differ)."""

    def sampling(self, **settings: Any) -> Sampling:
        """This section's sampling keys as a :class:`Sampling`, with ``settings`` (what lives elsewhere: the
        seed, GRPO's temperature, ...) over them."""
        names = {f.name for f in dataclasses.fields(Sampling)}
        return Sampling(**{**{k: getattr(self, k) for k in type(self).model_fields if k in names}, **settings})


class GenerationSection(SamplingSection):
    max_retries: int = Field(10, ge=0)
    max_tokens: MaxTokens = 1024
    temperature: Temperature = 0.6
    top_p: TopP = 0.95
    top_k: int = -1
    repetition_penalty: RepetitionPenalty = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


class EvalConfig(Strict):
    """An eval preset (``benchmarks/<name>.yaml``): mirrors upstream's tools/eval/configs/*.yaml."""

    # Not a config key: the dotted keys given on the command line (--set and flags), which a backend that does not
    # take them must refuse; a preset's keys for other backends (dtype for an API model) simply do not apply.
    _set_keys: tuple[str, ...] = PrivateAttr(())

    datasets: list[str] = Field(default_factory=list)  # benchmark plugin names
    data_dir: str | None = None
    results_dir: str = "results"
    model: ModelSection = ModelSection()
    evaluation: EvaluationSection = EvaluationSection()
    frames: FramesSection | None = None  # None: the benchmark's own frame spec
    generation: GenerationSection = GenerationSection()

    @field_validator("datasets")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one benchmark")
        return value


# -------------------------------------------------------------------------------------------------- loading
def read_file(path: Path) -> dict[str, Any]:
    """Parse a .yaml/.yml/.toml file into a dict, with one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = read_text(path, ConfigError)
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"{path}: expected a .yaml, .yml or .toml file")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_config(model: type[M], path: Path | None, overrides: list[str] = (), base: dict | None = None) -> M:
    """Validate ``base`` (defaults) ← file at ``path`` ← ``--set`` overrides against ``model``."""
    data = deep_merge(base or {}, read_file(path) if path else {})
    for item in overrides:
        apply_override(model, data, item)
    set_keys = [item.partition("=")[0].strip() for item in overrides]
    config = validate(model, data, source=str(path) if path else "config", set_keys=set_keys)
    if hasattr(config, "_set_keys"):
        config._set_keys = tuple(set_keys)
    return config


def validate(model: type[M], data: dict[str, Any], source: str, set_keys: list[str] = (), prefix: str = "") -> M:
    """``data`` as a ``model``, or a one-line ConfigError. ``prefix``: where ``data`` sits in the file (a plugin's
    own options table, e.g. ``rollout.options``), so the error names the key as the user wrote it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_error(model, exc, source, set_keys, prefix)) from None


def describe_error(model: type[BaseModel], exc: ValidationError, source: str, set_keys: list[str] = (),
                   prefix: str = "") -> str:
    """One line for the first error, blaming the ``--set`` flag when the bad value came from one, else the file."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    key = ".".join([prefix, *loc] if prefix else loc)
    blamed = [k for k in set_keys if key == k or key.startswith(k + ".")]
    if blamed:
        source = f"--set {blamed[-1]}"
    if err["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'{suggest(loc[-1], fields_at(model, loc[:-1]))}"
    if err["type"] == "missing":
        return f"{source}: missing required key '{key}'"
    msg = err["msg"].removeprefix("Value error, ")
    if not key:
        return f"{source}: {msg}"
    got = err.get("input")
    got_text = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
    return f"{source}: key '{key}': {msg}{got_text}"


def suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f" — did you mean '{close[0]}'?" if close else f" (valid keys: {', '.join(options)})"


def fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Valid key names of the (sub)section found by walking ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        sub = _submodel(current, part)
        if sub is None:
            return []
        current = sub
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _submodel(model: Any, key: str) -> type[BaseModel] | None:
    if not (isinstance(model, type) and issubclass(model, BaseModel)) or key not in model.model_fields:
        return None
    annotation = model.model_fields[key].annotation
    candidates = [annotation, *get_args(annotation)]
    for cand in candidates:
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
        if get_origin(cand) is dict:  # dict[str, Section]: any key maps to the value model
            value = get_args(cand)[-1]
            if isinstance(value, type) and issubclass(value, BaseModel):
                return value
    return None


def apply_override(model: type[BaseModel], data: dict[str, Any], item: str) -> None:
    """Apply one ``section.key=value`` override; the value is parsed as YAML (so 3, 0.5, true, [a, b])."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    parts = key.split(".")
    current: Any = model
    for i, part in enumerate(parts):
        valid = fields_at(model, parts[:i])
        if valid and part not in valid:
            raise ConfigError(f"--set {key}: unknown key '{part}'{suggest(part, valid)}")
        current = _submodel(current, part)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    target = data
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[parts[-1]] = value


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists and scalars are leaves)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}{key}." if isinstance(value, dict) else f"{prefix}{key}"))
    return out


def changed_keys(old: dict[str, Any], new: dict[str, Any], *, safe: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ between two nested configs, except the ``safe`` ones (a key, or a section
    prefix ending in '.')."""
    a, b = flatten(old), flatten(new)
    missing = object()
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, missing) != b.get(k, missing))
    return [k for k in keys if not any(k == s or (s.endswith(".") and k.startswith(s)) for s in safe)]


# ------------------------------------------------------------------------------------------------- presets
# reasonkit/presets/ holds symlinks to the top-level benchmarks/ and recipes/ in a checkout and copies of them in
# the wheel. resolve() follows the symlinks, so messages and manifests name the user-editable file in a checkout.
PRESET_DIR = (Path(__file__).parent / "presets" / "benchmarks").resolve()
RECIPE_DIR = (Path(__file__).parent / "presets" / "recipes").resolve()


def preset_path(name_or_path: str) -> Path:
    """A preset name (``robovqa``: ``benchmarks/robovqa.yaml``) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    return PRESET_DIR / f"{name_or_path}.yaml"


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file, or the name of a shipped one (``synthphys-sft``: ``recipes/synthphys-sft.toml``). An existing
    file always wins over a shipped name; a bare name that is neither is a one-line error listing the shipped ones."""
    candidate = Path(name_or_path)
    if candidate.exists() or candidate.suffix == ".toml" or len(candidate.parts) > 1:
        return candidate  # a path: read_file reports it if missing
    shipped = RECIPE_DIR / f"{candidate.name}.toml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))
    close = difflib.get_close_matches(candidate.name, names, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(f"{name_or_path}: no such recipe file and not a shipped recipe ({hint}shipped: "
                      f"{', '.join(names)})")
