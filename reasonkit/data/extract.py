"""Safe extraction of downloaded tarballs: every member is checked before anything is written, and one bad
member refuses the whole archive (upstream's bare ``extractall`` let ``../``, absolute paths and links write
anywhere on the machine)."""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from pathlib import Path

from reasonkit.errors import DataError
from reasonkit.upstream_format import first_symlink

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class UnsafeArchiveError(DataError):
    """An archive member would land outside the extraction folder or is not a plain file/folder/link."""


def is_archive(path: Path | str) -> bool:
    return str(path).endswith(ARCHIVE_SUFFIXES)


def _inside(relative: str) -> bool:
    """Whether a normalised POSIX path stays inside its root (no absolute path, no climbing out)."""
    norm = posixpath.normpath(relative)
    return not (norm.startswith("/") or norm == ".." or norm.startswith("../"))


def _refusal(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: refusing to extract, member {member!r} {why}")


def check_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    """Raise UnsafeArchiveError naming the archive and the first member that could escape or is special."""
    links: set[str] = set()
    for m in members:
        name = m.name
        refuse = lambda why, name=name: _refusal(archive, name, why)
        if not name or name.startswith(("/", "\\")):
            raise refuse("has an absolute path")
        if ".." in name.replace("\\", "/").split("/"):
            raise refuse("contains '..'")
        norm = posixpath.normpath(name)
        # A member reached through a link of the same archive could be written wherever that link points.
        parents = [posixpath.join(*norm.split("/")[:i]) for i in range(1, norm.count("/") + 1)]
        if any(p in links for p in parents):
            raise refuse("is reached through a link in the archive")
        if m.issym():
            target = m.linkname
            if target.startswith("/") or not _inside(posixpath.join(posixpath.dirname(norm), target)):
                raise refuse(f"is a symlink pointing outside the extraction folder ({target!r})")
            links.add(norm)
        elif m.islnk():
            if m.linkname.startswith("/") or not _inside(m.linkname):
                raise refuse(f"is a hard link pointing outside the extraction folder ({m.linkname!r})")
        elif not (m.isfile() or m.isdir()):
            raise refuse("is a device, FIFO or other special file")


def _check_on_disk(archive: Path, dest: Path, name: str) -> None:
    """Folders already on disk could be symlinks planted earlier: check where a write would really land."""
    root, parent = dest.resolve(), (dest / posixpath.normpath(name)).parent.resolve()
    if parent != root and root not in parent.parents:
        link = first_symlink(dest, Path(posixpath.normpath(name)).parent)
        via = f" ({link} is a symlink)" if link is not None else ""
        raise _refusal(archive, name, f"would be written through a link to {parent}, outside {dest}{via}")


def extract_archive(archive: Path, dest: Path | None = None) -> list[str]:
    """Extract ``archive`` into ``dest`` (default: beside itself) after checking every member; returns the
    member names written. Files are written to a temporary name and renamed, so an interrupted extraction
    never leaves a truncated file under its final name."""
    archive = Path(archive)
    dest = Path(dest) if dest is not None else archive.parent
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the `with` below)
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({exc})") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive}: truncated or corrupt tar archive ({exc})") from None
        check_members(archive, members)
        for m in members:
            _check_on_disk(archive, dest, m.name)
        written = []
        for m in members:
            target = dest / posixpath.normpath(m.name)
            _check_on_disk(archive, dest, m.name)  # again: links written by this archive are on disk now
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink() or target.exists():
                    target.unlink()
                os.symlink(m.linkname, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                try:  # a hard link is written as a copy of the member it names
                    source = tar.extractfile(m)
                except KeyError:
                    source = None
                if source is None:
                    raise DataError(f"{archive}: cannot read member {m.name!r} (missing link target?)")
                part = target.with_name(target.name + ".part")
                with source, open(part, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                # Keep the owner's permission bits only: no setuid/setgid, nothing group/world-writable.
                os.chmod(part, (m.mode & 0o755) | 0o600)
                os.replace(part, target)
            written.append(posixpath.normpath(m.name))
    return written
