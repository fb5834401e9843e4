"""Fetch a skill's files into a private staging directory on the worker host.

Sources: a directory under the operator's skills root (``RUNYARD_SKILLS_DIR``),
a git repository (``https://…``, or ``file://…`` inside the skills root:
other host repositories are not the client's to read), or a ``.tar.gz``/
``.tgz``/``.zip`` archive over http(s). Everything lands in a staging
directory that only runyard and the agent's uid can reach; nothing here
writes into the agent's home (that happens inside the sandbox, as the
agent, see :mod:`runyard.environments.reconcile`). Archives are size-capped
and extracted with tarfile's ``data`` filter (no absolute paths, no links
out, no devices); zip members are checked the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from runyard.domain.capabilities import SourceKind, classify_source
from runyard.errors import FetchError
from runyard.services.capabilities import SKILLS_DIR_ENV, local_source_path, skills_root

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024
MAX_EXTRACTED_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 20_000
FETCH_TIMEOUT_S = 120


def _git_clone(url: str, dest: Path) -> None:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(dest.parent),
        "GIT_ALLOW_PROTOCOL": "https:file",
    }
    argv = ["git", "-c", "core.hooksPath=/dev/null", "clone", "--quiet", "--depth", "1"]
    argv += ["--no-recurse-submodules", "--", url, str(dest)]
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FetchError(f"git clone timed out after {FETCH_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise FetchError("git is not installed on the worker") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise FetchError(f"git clone failed: {tail.replace(str(dest), '<dest>')}")
    shutil.rmtree(dest / ".git", ignore_errors=True)


def _download(url: str, dest: Path) -> None:
    if not url.lower().startswith(("http://", "https://")):
        raise FetchError("archives are fetched over http(s) only")
    try:
        # The scheme is checked above (classify_source too): http(s) only.
        opened = urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S)  # noqa: S310
        with opened as resp, dest.open("wb") as out:
            total = 0
            while chunk := resp.read(65_536):
                total += len(chunk)
                if total > MAX_ARCHIVE_BYTES:
                    raise FetchError(f"archive is larger than {MAX_ARCHIVE_BYTES} bytes")
                out.write(chunk)
    except FetchError:
        raise
    except (OSError, ValueError) as exc:
        raise FetchError(f"cannot download the archive: {exc}") from exc


def _extract(archive: Path, dest: Path, url_path: str) -> None:
    dest.mkdir()
    try:
        if url_path.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check_members([(i.filename, i.file_size) for i in infos])
                zf.extractall(dest)  # noqa: S202 -- members checked above
        else:
            with tarfile.open(archive, "r:gz") as tf:
                members = tf.getmembers()
                _check_members([(m.name, m.size) for m in members])
                tf.extractall(dest, filter="data")
    except FetchError:
        raise
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise FetchError(f"cannot extract the archive: {type(exc).__name__}") from exc


def _check_members(members: list[tuple[str, int]]) -> None:
    if len(members) > MAX_MEMBERS:
        raise FetchError(f"archive has more than {MAX_MEMBERS} entries")
    if sum(size for _, size in members) > MAX_EXTRACTED_BYTES:
        raise FetchError(f"archive expands to more than {MAX_EXTRACTED_BYTES} bytes")
    for name, _ in members:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise FetchError(f"archive entry {name!r} points outside the archive")


def _find_skill(top: Path, skill: str) -> Path:
    """The directory holding ``SKILL.md``: the top, ``<skill>/`` or ``skills/<skill>/``
    (also below a single top-level directory, as archives usually have)."""
    bases = [top]
    entries = [p for p in top.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        bases.append(entries[0])
    for base in bases:
        for cand in (base, base / skill, base / "skills" / skill):
            marker = cand / "SKILL.md"
            usable = cand.is_dir() and not cand.is_symlink()
            if usable and marker.is_file() and not marker.is_symlink():
                return cand
    raise FetchError(
        f"the skill source has no SKILL.md (looked at its top level, {skill}/ and skills/{skill}/)"
    )


def stage_skill(source: str, skill: str, dest: Path, owner: int | None) -> None:
    """Fetch ``source`` and leave the skill directory at ``dest`` (owned by ``owner``)."""
    try:
        kind = classify_source(source)
    except ValueError as exc:
        raise FetchError(str(exc)) from exc
    work = dest.parent / f".fetch-{dest.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        fetched = work / "src"
        if kind is SourceKind.ARCHIVE:
            _download(source, work / "archive")
            _extract(work / "archive", fetched, source.split("?", 1)[0])
        else:
            local = kind is SourceKind.LOCAL or source.startswith("file://")
            path: Path | None = None
            if local:
                root = skills_root()
                if root is None:
                    raise FetchError(f"local skill sources need {SKILLS_DIR_ENV} on the worker")
                try:
                    path = local_source_path(source, root)
                except ValueError as exc:
                    raise FetchError(str(exc)) from exc
            if kind is SourceKind.LOCAL:
                assert path is not None
                if not path.is_dir():
                    raise FetchError("the local skill source is not a directory")
                shutil.copytree(path, fetched, symlinks=True)
            else:
                _git_clone(f"file://{path}" if path is not None else source, fetched)
        os.rename(_find_skill(fetched, skill), dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if owner is not None:
        chown_tree(dest, owner)


def chown_tree(top: Path, owner: int) -> None:
    """Give ``top`` and everything below it to ``owner``, never following links."""
    os.lchown(top, owner, owner)
    for parent, dirs, files in os.walk(top, followlinks=False):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), owner, owner)
