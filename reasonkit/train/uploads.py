"""Where a run's checkpoints and final export go: each ``[[train.ckpt.upload]]`` entry (and the cosmos-rl
``upload_hf`` / ``upload_s3`` keys, spelled as such entries) names a registered uploader, resolved through the
registry with its options validated, so a third party's uploader is used from a recipe exactly like hf and s3."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reasonkit.errors import ConfigError


@dataclass(frozen=True)
class UploadTarget:
    name: str
    when: str  # "final": the final export only; "all": every complete checkpoint too
    final_dest: str  # the dest the final export goes to (checkpoints: checkpoints/<step>)
    factory: Callable[..., Any]
    options: dict[str, Any]

    def build(self):
        return self.factory(**self.options)


def upload_targets(recipe) -> list[UploadTarget]:
    """The recipe's uploads, in order. An unknown uploader or a bad option is a one-line ConfigError; load_recipe
    calls this so that it fails before any process or model starts."""
    from reasonkit.plugins import get_plugins, get_uploader_factory, unknown_name_message

    plugins = get_plugins()
    known = plugins.names("uploaders")
    source = recipe.source[0] if recipe.source else "recipe"
    targets = []
    for key, entry in recipe.train.ckpt.uploads():
        if entry.name not in known:
            raise ConfigError(f"{source}: {key}: {unknown_name_message('uploader', entry.name, known)}")
        meta = plugins.registration("uploaders", entry.name).meta
        if entry.when == "all" and meta.get("checkpoints", True) is False:
            raise ConfigError(f"{source}: {key}.when: uploader '{entry.name}' takes the final export only "
                              "(when = \"final\")")
        factory = get_uploader_factory(entry.name)
        options = recipe.plugin_options("uploaders", entry.name, entry.options, prefix=f"{key}.options",
                                        what="uploader")
        # an uploader is built with its validated options as keywords, as the hook's contract says
        keywords = {} if options is None else dict(options)
        targets.append(UploadTarget(entry.name, entry.when, meta.get("final_dest", "final"), factory, keywords))
    return targets
