"""`reasonkit data download`: fetch an upstream Cosmos-Reason1 dataset repo from the HF hub (or a local
mirror), extract its archives safely, and write a manifest.

Layout: repo file ``<path>`` lands at ``<target>/<task>/<path>`` and every archive is extracted beside itself.
The benchmark repo holds ``<ds>/<ds>_benchmark_qa_pairs.json`` and ``<ds>/*.tar.gz`` (whose members are
``clips/<id>.mp4``), so ``--target DIR`` gives exactly what ``reasonkit eval --data-dir DIR`` reads:
``DIR/benchmark/<ds>/<ds>_benchmark_qa_pairs.json`` and ``DIR/benchmark/<ds>/clips/<id>.mp4``. SFT and RL
land in ``DIR/sft/...`` and ``DIR/rl/...`` the same way.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from reasonkit.data.extract import UnsafeArchiveError, extract_archive, is_archive
from reasonkit.data.manifest import MANIFEST_NAME, archive_done, load_manifest, record_file, save_manifest
from reasonkit.errors import DataError
from reasonkit.upstream_format import safe_join

REPOS = {
    "benchmark": "nvidia/Cosmos-Reason1-Benchmark",
    "sft": "nvidia/Cosmos-Reason1-SFT-Dataset",
    "rl": "nvidia/Cosmos-Reason1-RL-Dataset",
}
BENCHMARK_SUBSETS = ("bridgev2", "robovqa", "agibot", "holoassist", "av", "robofail")
# Folders inside a repo/mirror that are bookkeeping, never data.
_SKIP_DIRS = {".cache", ".git", ".huggingface"}


@dataclass
class DownloadReport:
    folder: Path
    repo_id: str
    revision: str
    files: list[str] = field(default_factory=list)
    extracted: list[str] = field(default_factory=list)
    skipped_archives: list[str] = field(default_factory=list)
    manifest: Path | None = None


def allow_patterns(task: str, subsets: list[str] | None) -> list[str] | None:
    """hub ``allow_patterns`` for the chosen subsets (None: the whole repo)."""
    if task not in REPOS:
        raise DataError(f"--task {task!r}: expected one of {sorted(REPOS)}")
    if not subsets:
        return None
    for name in subsets:
        if task == "benchmark" and name not in BENCHMARK_SUBSETS:
            raise DataError(f"--subset {name!r}: the benchmark has subsets {', '.join(BENCHMARK_SUBSETS)}")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise DataError(f"--subset {name!r}: expected a folder name of the dataset repo")
    return [f"{name}/*" for name in subsets]


def _public_endpoint(endpoint: str | None) -> str:
    """The endpoint without any user:password part, fit for logs and the manifest."""
    if not endpoint:
        return "https://huggingface.co"
    parts = urlsplit(endpoint)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _filter(names: list[str], patterns: list[str] | None) -> list[str]:
    from huggingface_hub.utils import filter_repo_objects

    return sorted(filter_repo_objects(names, allow_patterns=patterns))


def fetch_from_hub(repo_id: str, folder: Path, patterns: list[str] | None, revision: str | None,
                   say: Callable[[str], None]) -> tuple[list[str], str, str]:
    """snapshot_download into ``folder`` (it resumes partial files itself). Returns (files, commit, endpoint).
    HF_TOKEN is read from the environment and handed to the hub client only: never logged or stored (and
    never written to disk with ``login()``, as upstream did)."""
    from huggingface_hub import HfApi, snapshot_download

    token = os.environ.get("HF_TOKEN") or None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    shown = _public_endpoint(endpoint)
    try:
        info = HfApi(endpoint=endpoint, token=token).dataset_info(repo_id, revision=revision)
        files = _filter([s.rfilename for s in info.siblings or []], patterns)
        if not files:
            raise DataError(f"{repo_id}@{revision or 'main'}: no file matches {patterns} on {shown}")
        say(f"downloading {len(files)} files of {repo_id}@{info.sha[:12]} from {shown} into {folder}")
        # Pin the commit resolved above so every file comes from one revision.
        snapshot_download(repo_id, repo_type="dataset", revision=info.sha, local_dir=folder,
                          allow_patterns=patterns, token=token, endpoint=endpoint, max_workers=4)
    except DataError:
        raise
    except Exception as exc:  # hub, network and filesystem errors all become one clear line
        message = str(exc).splitlines()[0] if str(exc) else ""
        if token:
            message = message.replace(token, "***")
        hint = "" if token else " (gated or private? set HF_TOKEN)"
        raise DataError(f"{repo_id}@{revision or 'main'}: download from {shown} failed: "
                        f"{type(exc).__name__}: {message}{hint}") from None
    return files, info.sha, shown


def _mirror_files(mirror: Path, repo_id: str) -> tuple[Path, list[str], str | None]:
    """(repo root, repo files, revision) of a mirror: ``mirror`` or ``mirror/<repo_id>``. A folder written by
    ``reasonkit data download`` is a valid mirror: its manifest names the repo files (not the extracted
    clips) and the revision they came from."""
    root = mirror / repo_id if (mirror / repo_id).is_dir() else mirror
    if not root.is_dir():
        raise DataError(f"--mirror {mirror}: folder not found (expected the layout of {repo_id})")
    if root == mirror and (mirror / repo_id.split("/")[0]).is_dir():
        raise DataError(f"--mirror {mirror}: holds {repo_id.split('/')[0]}/ but not {repo_id}")
    if (root / MANIFEST_NAME).is_file():
        manifest = load_manifest(root)
        return root, sorted(manifest["files"]), manifest.get("revision")
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        names += [f if rel_dir == "." else f"{rel_dir}/{f}" for f in filenames if not f.endswith(".part")]
    return root, names, None


def fetch_from_mirror(mirror: Path, repo_id: str, folder: Path, patterns: list[str] | None,
                      say: Callable[[str], None]) -> tuple[list[str], str | None]:
    """Copy matching files from a local mirror; returns (files, the mirror's revision if it records one).
    Files already copied (same size and mtime) are skipped, so an interrupted copy resumes."""
    root, names, revision = _mirror_files(mirror, repo_id)
    files = _filter(names, patterns)
    if not files:
        raise DataError(f"--mirror {root}: no file matches {patterns or 'the repo'}")
    say(f"copying {len(files)} files of {repo_id} from mirror {root} into {folder}")
    for rel in files:
        # Only the destination is resolved and checked: mirrors made from an HF cache link files to blobs
        # outside the snapshot folder, which is fine to read from.
        src, dst = root / rel, safe_join(folder, rel, what=f"--mirror {root} file")
        s = src.stat()
        if dst.exists() and dst.stat().st_size == s.st_size and dst.stat().st_mtime_ns == s.st_mtime_ns:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        part = dst.with_name(dst.name + ".part")
        shutil.copyfile(src, part)
        shutil.copystat(src, part)
        os.replace(part, dst)
    return files, revision


def download(task: str, target: Path, subsets: list[str] | None = None, revision: str | None = None,
             mirror: Path | None = None, say: Callable[[str], None] = print) -> DownloadReport:
    """Fetch, record, extract. Safe to re-run: finished files and archives are skipped. Unsafe archives are
    refused whole; the others are still extracted, then the first refusal is raised."""
    patterns = allow_patterns(task, subsets)
    repo_id = REPOS[task]
    folder = Path(target) / task
    folder.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(folder)
    if mirror is not None:
        files, mirrored = fetch_from_mirror(Path(mirror), repo_id, folder, patterns, say)
        resolved, source = mirrored or revision or "mirror", {"mirror": str(Path(mirror).resolve())}
        if revision and mirrored and not mirrored.startswith(revision):
            say(f"note: the mirror records revision {mirrored}; --revision {revision} is kept as requested only")
    else:
        files, resolved, endpoint = fetch_from_hub(repo_id, folder, patterns, revision, say)
        source = {"endpoint": endpoint}
    for rel in files:  # repo paths come from a listing we do not control: keep them inside the folder
        safe_join(folder, rel, what=f"{repo_id} file")
    manifest.update(repo_id=repo_id, repo_type="dataset", task=task, revision=resolved,
                    requested_revision=revision, source=source)
    for rel in files:
        record_file(manifest, folder, rel, resolved)
    report = DownloadReport(folder=folder, repo_id=repo_id, revision=resolved, files=files)
    report.manifest = save_manifest(folder, manifest)
    refused: list[UnsafeArchiveError] = []
    for rel in filter(is_archive, files):
        if archive_done(manifest, folder, rel):
            report.skipped_archives.append(rel)
            say(f"already extracted: {rel}")
            continue
        say(f"extracting {rel}")
        try:
            members = extract_archive(folder / rel)
        except UnsafeArchiveError as exc:
            refused.append(exc)
            continue
        manifest["archives"][rel] = {"sha256": manifest["files"][rel]["sha256"], "members": members}
        report.extracted.append(rel)
        save_manifest(folder, manifest)  # after each archive, so an interruption keeps finished work
    if refused:
        raise UnsafeArchiveError("; ".join(map(str, refused)))
    return report
