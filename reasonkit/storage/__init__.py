"""Uploads of checkpoints and exports (HF hub, S3). Uploaders are plugins (``reasonkit_register_uploaders``);
this package holds the built-in ones and the background :class:`~reasonkit.storage.background.UploadQueue`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Uploader(Protocol):
    def upload(self, folder: Path, dest: str) -> str:
        """Upload every file under ``folder`` to ``dest``; return where they went (a URL)."""
        ...


def make_uploader(name: str, **options: Any) -> Uploader:
    """The uploader registered as ``name`` (``hf``, ``s3``, or a third party's), built with ``options``."""
    from reasonkit.plugins import get_uploader_factory

    return get_uploader_factory(name)(**options)
