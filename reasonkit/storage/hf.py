"""The `hf` uploader: a folder to a Hugging Face Hub repo (created if missing) in one commit.

The token is read from ``HF_TOKEN`` only — never an option — so it cannot end up in a recipe, a saved config or
a tracker. ``endpoint`` (default ``HF_ENDPOINT``) points it at a private hub or a mirror.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from reasonkit.config import keyword_options
from reasonkit.errors import ReasonkitError

RepoType = Literal["model", "dataset", "space"]


class HFUploader:
    """``upload(folder, dest)``: ``dest`` is a repo id (``namespace/name``, optionally ``hf://``-prefixed);
    empty uses the ``repo_id`` option."""

    def __init__(
        self,
        *,
        repo_id: str | None = None,
        repo_type: RepoType = "model",
        private: bool = False,
        endpoint: str | None = None,
        revision: str | None = None,
        path_in_repo: str = "",
        commit_message: str | None = None,
    ):
        if repo_type not in get_args(RepoType):
            raise ReasonkitError(f"HF upload: repo_type must be one of {', '.join(get_args(RepoType))}, "
                                 f"got {repo_type!r}")
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.private = private
        self.endpoint = endpoint
        self.revision = revision
        self.path_in_repo = path_in_repo
        self.commit_message = commit_message

    def upload(self, folder: Path, dest: str = "") -> str:
        folder = Path(folder)
        if not folder.is_dir():
            raise ReasonkitError(f"HF upload: {folder} is not a folder")
        repo_id = dest.removeprefix("hf://").strip("/") or self.repo_id
        if not repo_id or repo_id.count("/") > 1:
            raise ReasonkitError(f"HF upload: destination must be a repo id 'namespace/name', got {dest!r}")
        token = os.environ.get("HF_TOKEN")
        if not token:
            raise ReasonkitError("HF upload needs a write token in the HF_TOKEN environment variable")

        from huggingface_hub import HfApi
        from huggingface_hub.errors import OfflineModeIsEnabled

        api = HfApi(endpoint=self.endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
        try:
            # private=None (not False) leaves an organisation's default visibility alone.
            repo_url = api.create_repo(repo_id, repo_type=self.repo_type, private=True if self.private else None,
                                       exist_ok=True)
            api.upload_folder(
                folder_path=folder,
                repo_id=repo_url.repo_id,
                repo_type=self.repo_type,
                revision=self.revision,
                path_in_repo=self.path_in_repo or None,
                commit_message=self.commit_message or f"Upload {folder.name} with reasonkit",
            )
        except OfflineModeIsEnabled as exc:
            raise ReasonkitError("HF upload impossible while HF_HUB_OFFLINE=1 is set; unset it to upload") from exc
        return str(repo_url)


# What [[train.ckpt.upload]] options an `hf` entry takes (the constructor's keywords).
HFOptions = keyword_options(HFUploader)
