"""Model families as data: what differs between Qwen2.5-VL (Cosmos-Reason1) and Qwen3-VL (Cosmos-Reason2) checkpoints.

A family is found from the checkpoint's ``config.json`` ``model_type``. The frame rules of a benchmark (fps, frame
count, pixel bounds) stay the benchmark's; the size factor (vision patch × spatial merge) is the model's, so a
frame spec that does not fix one takes it from the model (:func:`frame_spec_for`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from reasonkit.types import FrameSpec


@dataclass(frozen=True)
class ModelFamily:
    name: str
    model_types: tuple[str, ...]  # config.json model_type values of this family
    patch_size: int  # vision patch, px
    merge_size: int = 2  # spatial merge of patches into one LM token
    temporal_patch_size: int = 2  # frames per temporal patch
    vision_prefix: str = "model.visual."  # parameter names of the vision tower (freeze patterns, lean forward)
    timestamps_in_prompt: bool = False  # the processor writes "<t seconds>" per temporal patch into the prompt

    @property
    def size_factor(self) -> int:
        """Frame sides are multiples of this many px (one merged token = size_factor² px)."""
        return self.patch_size * self.merge_size


QWEN2_5_VL = ModelFamily("qwen2.5-vl", ("qwen2_vl", "qwen2_5_vl"), patch_size=14)
QWEN3_VL = ModelFamily("qwen3-vl", ("qwen3_vl", "qwen3_vl_moe"), patch_size=16, timestamps_in_prompt=True)
FAMILIES = (QWEN2_5_VL, QWEN3_VL)
DEFAULT = QWEN2_5_VL  # a model reasonkit cannot inspect (an API model) is sized as Qwen2.5-VL was


def family_named(name: str) -> ModelFamily:
    from reasonkit.errors import ConfigError
    from reasonkit.plugins import unknown_name_message

    for family in FAMILIES:
        if family.name == name:
            return family
    raise ConfigError(unknown_name_message("model family", name, [f.name for f in FAMILIES]))


def family_of_model_type(model_type: str | None) -> ModelFamily | None:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    return None


def detect_family(model: str, revision: str | None = None) -> ModelFamily | None:
    """The family of a local folder or a hub id (read from its config.json; a hub id only from the local cache,
    which loading the model has filled). None when there is no config to read (e.g. an API model)."""
    config = Path(model) / "config.json"
    if config.is_file():
        try:
            return family_of_model_type(json.loads(config.read_text(encoding="utf-8")).get("model_type"))
        except (OSError, ValueError, AttributeError):
            return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json", revision=revision)
    except Exception:  # not a repo id at all (an API model name, a missing folder)
        return None
    if isinstance(cached, str):
        return family_of_model_type(json.loads(Path(cached).read_text(encoding="utf-8")).get("model_type"))
    return None


def frame_spec_for(spec: FrameSpec, family: ModelFamily | None) -> FrameSpec:
    """``spec`` with the model's size factor when it sets none; an explicit factor the model cannot take (its
    frames would not tile into patches) is refused."""
    from reasonkit.errors import ConfigError

    family = family or DEFAULT
    if spec.size_factor is None:
        return dataclasses.replace(spec, size_factor=family.size_factor, frame_factor=family.temporal_patch_size)
    if spec.size_factor % family.size_factor:
        raise ConfigError(f"frames.size_factor {spec.size_factor} does not tile into {family.name}'s "
                          f"{family.size_factor}-px merged patches; omit it to use the model's")
    return spec
