"""Artifacts on disk and their links: signed download links, the blob store, collecting
a run's ``outputs/`` and placing its uploaded ``inputs/``.

The agent's home is agent-controlled and persists between runs, so the walks
must never follow a symlink (to a file, to ``outputs``/``inputs`` itself or to a
component of the working directory), never hang on a planted FIFO, and
report what they skip. Download links are the only credential-free way to read
an artifact, so a link must name exactly one artifact until one expiry time
under one deployment's key. The blob store is content-addressed: identical
files share one blob and a rejected copy leaves nothing behind. Every test
works in ``tmp_path`` (standing in for the agent's home and the artifact
directory); nothing touches the real filesystem outside it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from runyard.artifacts.blobs import ArtifactBlobs, TooLarge
from runyard.artifacts.collect import MAX_DEPTH, Collected, Limits, collect, snapshot
from runyard.artifacts.inputs import place_inputs, safe_name
from runyard.artifacts.links import ArtifactLinks
from runyard.domain.canvas import block_id
from runyard.errors import Forbidden, PathEscape

NOW_S = 1_700_000_000
NOW_MS = NOW_S * 1000
RUN = "run_art_1"
WS = "ws_art_1"
BIG = Limits(max_files=100, max_bytes=10 * 1024 * 1024)


@contextmanager
def no_hang(seconds: int = 30) -> Iterator[None]:
    """Turn a hang (a blocking open of a FIFO) into a failure instead of a stuck suite."""

    def expired(signum: int, frame: object) -> None:
        raise AssertionError(f"the call did not return within {seconds}s: it hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def blob_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# ---- links --------------------------------------------------------------------------


def link_params(links: ArtifactLinks, artifact_id: str) -> tuple[str, str, int]:
    link = links.issue(artifact_id, NOW_S)
    parts = urlsplit(link.path)
    assert parts.path == f"/v1/artifacts/{artifact_id}/download"
    query = parse_qs(parts.query, strict_parsing=True)
    assert set(query) == {"expires", "signature"}
    (expires,), (signature,) = query["expires"], query["signature"]
    assert int(expires) == link.expires_at
    return expires, signature, link.expires_at


def forbidden_reason(call: Callable[..., None], *args: object) -> str:
    with pytest.raises(Forbidden) as caught:
        call(*args)
    assert caught.value.status == 403
    return str(caught.value.data["reason"])


def test_issued_link_verifies_until_it_expires() -> None:
    links = ArtifactLinks(b"secret-key-1", lifetime_seconds=600)
    expires, signature, expires_at = link_params(links, "art_1")
    assert expires_at == NOW_S + 600
    assert len(signature) == 64
    links.verify("art_1", expires, signature, NOW_S)
    links.verify("art_1", expires, signature, expires_at)  # still valid at its last second
    reason = forbidden_reason(links.verify, "art_1", expires, signature, expires_at + 1)
    assert reason == "link_expired"


def test_same_inputs_issue_the_same_link() -> None:
    one = ArtifactLinks(b"k", 60)
    two = ArtifactLinks(b"k", 60)  # another API server of the same deployment
    assert one.issue("art_1", NOW_S) == two.issue("art_1", NOW_S)
    expires, signature, _ = link_params(one, "art_1")
    two.verify("art_1", expires, signature, NOW_S)


def test_tampered_signature_is_rejected() -> None:
    links = ArtifactLinks(b"k", 60)
    expires, signature, _ = link_params(links, "art_1")
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert forbidden_reason(links.verify, "art_1", expires, flipped, NOW_S) == "invalid_link"


def test_link_for_one_artifact_does_not_open_another() -> None:
    links = ArtifactLinks(b"k", 60)
    expires, signature, _ = link_params(links, "art_1")
    assert forbidden_reason(links.verify, "art_2", expires, signature, NOW_S) == "invalid_link"
    assert forbidden_reason(links.verify, "art_1x", expires, signature, NOW_S) == "invalid_link"


def test_extending_the_expiry_breaks_the_signature() -> None:
    links = ArtifactLinks(b"k", 60)
    expires, signature, _ = link_params(links, "art_1")
    later = str(int(expires) + 3600)
    assert forbidden_reason(links.verify, "art_1", later, signature, NOW_S) == "invalid_link"
    # an expired link whose expiry was pushed forward is still refused (not "expired")
    reason = forbidden_reason(links.verify, "art_1", later, signature, int(expires) + 10)
    assert reason == "invalid_link"


@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        ("", "good"),
        ("abc", "good"),
        ("-5", "good"),
        ("1.5", "good"),
        ("1" * 13, "good"),
        (" 1700000060", "good"),
        ("1700000060", ""),
        ("1700000060", "z" * 64),
        ("1700000060", "a" * 63),
        ("1700000060", "a" * 65),
        ("1700000060", "UPPER"),
    ],
)
def test_malformed_link_is_forbidden(expires: str, signature: str) -> None:
    links = ArtifactLinks(b"k", 60)
    good_expires, good_signature, _ = link_params(links, "art_1")
    if signature == "good":
        signature = good_signature
    elif signature == "UPPER":
        signature = good_signature.upper()
    with pytest.raises(Forbidden) as caught:
        links.verify("art_1", expires, signature, NOW_S)
    assert caught.value.data["reason"] == "invalid_link"
    assert caught.value.data["retryable"] is False
    links.verify("art_1", good_expires, good_signature, NOW_S)  # the genuine link still works


def test_links_of_another_key_do_not_verify() -> None:
    mine, theirs = ArtifactLinks(b"key-one", 60), ArtifactLinks(b"key-two", 60)
    expires, signature, _ = link_params(mine, "art_1")
    assert forbidden_reason(theirs.verify, "art_1", expires, signature, NOW_S) == "invalid_link"
    expires, signature, _ = link_params(theirs, "art_1")
    assert forbidden_reason(mine.verify, "art_1", expires, signature, NOW_S) == "invalid_link"
    assert mine.issue("art_1", NOW_S) != theirs.issue("art_1", NOW_S)


# ---- blobs --------------------------------------------------------------------------


def put(blobs: ArtifactBlobs, path: Path, limit: int = 1 << 30) -> tuple[str, int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return blobs.put_fd(fd, limit)
    finally:
        os.close(fd)


def test_put_fd_hashes_sizes_and_stores_by_content(tmp_path: Path) -> None:
    blobs = ArtifactBlobs(tmp_path / "blobs")
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one read chunk
    digest, size = put(blobs, write(tmp_path / "src.bin", data))
    assert (digest, size) == (sha(data), len(data))
    stored = blobs.path(digest)
    assert stored == tmp_path / "blobs" / digest[:2] / digest
    assert stored.read_bytes() == data
    assert blobs.exists(digest)
    assert not blobs.exists(sha(b"something else"))


def test_put_fd_reads_from_the_current_offset(tmp_path: Path) -> None:
    blobs = ArtifactBlobs(tmp_path / "blobs")
    src = write(tmp_path / "src", b"HEADERbody")
    fd = os.open(src, os.O_RDONLY)
    try:
        os.lseek(fd, 6, os.SEEK_SET)
        digest, size = blobs.put_fd(fd, 100)
    finally:
        os.close(fd)
    assert (digest, size) == (sha(b"body"), 4)


def test_empty_content_is_a_blob_too(tmp_path: Path) -> None:
    blobs = ArtifactBlobs(tmp_path / "blobs")
    digest, size = put(blobs, write(tmp_path / "empty", b""), limit=0)
    assert (digest, size) == (sha(b""), 0)
    assert blobs.path(digest).read_bytes() == b""


def test_identical_content_dedups_to_one_blob(tmp_path: Path) -> None:
    blobs = ArtifactBlobs(tmp_path / "blobs")
    first = put(blobs, write(tmp_path / "a", b"same bytes"))
    second = put(blobs, write(tmp_path / "b", b"same bytes"))
    third = put(blobs, write(tmp_path / "c", b"other bytes"))
    assert first == second != third
    assert blob_files(tmp_path / "blobs") == sorted([blobs.path(first[0]), blobs.path(third[0])])


def test_too_large_leaves_no_temporary_file(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    blobs = ArtifactBlobs(root)
    data = b"x" * 101
    with pytest.raises(TooLarge):
        put(blobs, write(tmp_path / "big", data), limit=100)
    assert blob_files(root) == []
    assert not blobs.exists(sha(data))
    # exactly at the limit is fine
    assert put(blobs, write(tmp_path / "fits", data[:100]), limit=100)[1] == 100
    assert [p.name for p in blob_files(root)] == [sha(data[:100])]


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "A" * 64, "g" * 64, "a" * 63, "a" * 65, "../" + "a" * 61, "a" * 64 + "\n"],
)
def test_path_rejects_anything_but_a_lowercase_sha256(tmp_path: Path, bad: str) -> None:
    blobs = ArtifactBlobs(tmp_path / "blobs")
    with pytest.raises(ValueError, match="sha256"):
        blobs.path(bad)


# ---- collect ------------------------------------------------------------------------


class Home:
    """An agent home in ``tmp_path`` with a working directory and a blob store."""

    def __init__(self, tmp_path: Path, cwd: str = "proj") -> None:
        self.root = tmp_path / "home"
        self.root.mkdir()
        self.cwd = cwd
        self.outputs = self.root / cwd / "outputs"
        self.blobs = ArtifactBlobs(tmp_path / "blobs")
        self.outside = tmp_path / "outside"
        self.outside.mkdir()

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        return snapshot(self.root, self.cwd)

    def collect(
        self, before: dict[str, tuple[int, int, int]] | None = None, limits: Limits = BIG
    ) -> Collected:
        return collect(
            self.root,
            self.cwd,
            before or {},
            self.blobs,
            run_id=RUN,
            workspace_id=WS,
            limits=limits,
            now=NOW_MS,
        )


def names(found: Collected) -> list[str]:
    return [a.name for a in found.artifacts]


def test_new_files_are_collected_with_hash_size_and_types(tmp_path: Path) -> None:
    home = Home(tmp_path)
    files = {
        "report.txt": b"hello\n",
        "table.csv": b"a,b\n1,2\n",
        "page.HTML": b"<p>x</p>",
        "README": b"no suffix",
    }
    for name, data in files.items():
        write(home.outputs / name, data)
    found = home.collect()
    assert found.warnings == []
    assert names(found) == sorted(files)
    kinds = {a.name: (a.type, a.media_type) for a in found.artifacts}
    assert kinds == {
        "README": ("file", "application/octet-stream"),
        "page.HTML": ("html", "text/html"),
        "report.txt": ("txt", "text/plain"),
        "table.csv": ("csv", "text/csv"),
    }
    for art in found.artifacts:
        data = files[art.name]
        assert (art.sha256, art.size_bytes) == (sha(data), len(data))
        assert home.blobs.path(art.sha256).read_bytes() == data
        assert art.id == block_id(RUN, f"artifact:{art.name}")
        assert (art.run_id, art.workspace_id, art.created_at) == (RUN, WS, NOW_MS)


def test_nested_directories_are_walked(tmp_path: Path) -> None:
    home = Home(tmp_path, cwd=".")
    write(home.outputs / "a" / "b" / "deep.json", b"{}")
    write(home.outputs / "a" / "top.md", b"# t")
    found = home.collect()
    assert names(found) == ["a/b/deep.json", "a/top.md"]
    assert found.artifacts[0].type == "json"
    assert found.artifacts[0].media_type == "application/json"


def test_collect_without_outputs_or_home_finds_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert home.collect().artifacts == [] and home.snapshot() == {}
    missing = collect(
        tmp_path / "no-home",
        "proj",
        {},
        home.blobs,
        run_id=RUN,
        workspace_id=WS,
        limits=BIG,
        now=NOW_MS,
    )
    assert missing.artifacts == [] and missing.warnings == []


def test_symlink_to_a_file_outside_is_not_collected(tmp_path: Path) -> None:
    home = Home(tmp_path)
    secret = write(home.outside / "secret.txt", b"host secret")
    write(home.outputs / "real.txt", b"mine")
    home.outputs.joinpath("link.txt").symlink_to(secret)
    (home.outputs / "linkdir").symlink_to(home.outside, target_is_directory=True)
    found = home.collect()
    assert names(found) == ["real.txt"]
    assert not home.blobs.exists(sha(b"host secret"))


def test_symlinked_outputs_directory_collects_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path)
    write(home.outside / "secret.txt", b"host secret")
    (home.root / "proj").mkdir()
    home.outputs.symlink_to(home.outside, target_is_directory=True)
    assert home.snapshot() == {}
    found = home.collect()
    assert found.artifacts == []
    assert not home.blobs.exists(sha(b"host secret"))


def test_symlinked_working_directory_component_collects_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path, cwd="proj/sub")
    write(home.outside / "sub" / "outputs" / "secret.txt", b"host secret")
    (home.root / "proj").symlink_to(home.outside, target_is_directory=True)
    assert home.outputs.joinpath("secret.txt").is_file()  # reachable by following links
    assert home.collect().artifacts == []
    assert not home.blobs.exists(sha(b"host secret"))


def test_fifo_is_skipped_without_hanging(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.outputs.mkdir(parents=True)
    os.mkfifo(home.outputs / "pipe.txt")
    write(home.outputs / "z.txt", b"after the fifo")
    with no_hang():
        before = home.snapshot()
        found = home.collect()
    assert "pipe.txt" not in before
    assert names(found) == ["z.txt"]


def test_unchanged_files_from_before_the_run_are_not_collected(tmp_path: Path) -> None:
    home = Home(tmp_path)
    old = write(home.outputs / "old.txt", b"from a previous run")
    write(home.outputs / "kept.txt", b"also old")
    os.utime(old, ns=(NOW_MS * 1_000_000, NOW_MS * 1_000_000))
    before = home.snapshot()
    assert set(before) == {"old.txt", "kept.txt"}
    assert home.collect(before).artifacts == []
    write(home.outputs / "new.txt", b"this run")
    assert names(home.collect(before)) == ["new.txt"]


def test_changed_files_are_collected(tmp_path: Path) -> None:
    home = Home(tmp_path)
    grown = write(home.outputs / "grown.txt", b"v1")
    same_size = write(home.outputs / "same.txt", b"aaaa")
    replaced = write(home.outputs / "replaced.txt", b"bbbb")
    stamp = (NOW_MS * 1_000_000, NOW_MS * 1_000_000)
    os.utime(same_size, ns=stamp)
    before = home.snapshot()
    grown.write_bytes(b"version two")  # new size
    same_size.write_bytes(b"cccc")
    os.utime(same_size, ns=(stamp[0], stamp[1] + 1_000_000))  # same size, new mtime
    # same size and mtime, but a new file (new inode) under the old name
    st = replaced.stat()
    fresh = write(home.outputs / "fresh.tmp", b"dddd")
    os.utime(fresh, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(fresh, replaced)
    found = home.collect(before)
    assert names(found) == ["grown.txt", "replaced.txt", "same.txt"]
    by_name = {a.name: a for a in found.artifacts}
    assert by_name["grown.txt"].sha256 == sha(b"version two")
    assert by_name["same.txt"].sha256 == sha(b"cccc")
    assert by_name["replaced.txt"].sha256 == sha(b"dddd")


def test_max_files_keeps_the_first_files_and_warns(tmp_path: Path) -> None:
    home = Home(tmp_path)
    for n in range(5):
        write(home.outputs / f"f{n}.txt", f"file {n}".encode())
    found = home.collect(limits=Limits(max_files=2, max_bytes=BIG.max_bytes))
    assert names(found) == ["f0.txt", "f1.txt"]
    assert found.warnings == ["only the first 2 output files were kept as artifacts"]
    assert len(blob_files(tmp_path / "blobs")) == 2


def test_max_bytes_budget_skips_what_does_not_fit_and_warns(tmp_path: Path) -> None:
    home = Home(tmp_path)
    write(home.outputs / "a.bin", b"a" * 10)
    write(home.outputs / "b.bin", b"b" * 10)
    write(home.outputs / "c.bin", b"c" * 5)
    found = home.collect(limits=Limits(max_files=100, max_bytes=15))
    # a fits (5 left), b does not, c fits exactly
    assert names(found) == ["a.bin", "c.bin"]
    assert sum(a.size_bytes for a in found.artifacts) == 15
    assert len(found.warnings) == 1
    assert "'b.bin'" in found.warnings[0] and "15 bytes" in found.warnings[0]
    assert not home.blobs.exists(sha(b"b" * 10))
    assert not [p for p in (tmp_path / "blobs").iterdir() if p.name.startswith(".incoming")]


def test_max_files_zero_collects_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path)
    write(home.outputs / "a.txt", b"a")
    found = home.collect(limits=Limits(max_files=0, max_bytes=BIG.max_bytes))
    assert found.artifacts == [] and found.warnings == []
    assert not (tmp_path / "blobs").exists()


def _deep(outputs: Path, depth: int, name: str) -> Path:
    return write(outputs.joinpath(*[f"d{n}" for n in range(depth)], name), name.encode())


def test_depth_limit(tmp_path: Path) -> None:
    home = Home(tmp_path)
    _deep(home.outputs, MAX_DEPTH, "deepest.txt")
    _deep(home.outputs, MAX_DEPTH + 1, "too-deep.txt")
    found = home.collect()
    prefix = "/".join(f"d{n}" for n in range(MAX_DEPTH))
    assert names(found) == [f"{prefix}/deepest.txt"]
    assert "too-deep.txt" not in str(home.snapshot())


def test_depth_limit_is_reported_as_a_warning(tmp_path: Path) -> None:
    home = Home(tmp_path)
    _deep(home.outputs, MAX_DEPTH + 1, "too-deep.txt")
    found = home.collect()
    assert found.artifacts == []
    assert found.warnings, "a file below the depth limit was dropped without a warning"


def test_non_utf8_file_name_is_skipped_with_a_warning(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.outputs.mkdir(parents=True)
    raw = os.fsencode(home.outputs) + b"/bad-\xff-name.txt"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"data")
    finally:
        os.close(fd)
    write(home.outputs / "good.txt", b"good")
    found = home.collect()
    assert names(found) == ["good.txt"]
    assert found.warnings == ["an output file with a name that is not UTF-8 was skipped"]
    assert not home.blobs.exists(sha(b"data"))


def test_too_long_name_is_skipped_with_a_warning(tmp_path: Path) -> None:
    home = Home(tmp_path)
    long = write(home.outputs / ("x" * 200) / ("y" * 200) / ("z" * 200 + ".txt"), b"long")
    assert len(str(long.relative_to(home.outputs))) > 500
    found = home.collect()
    assert found.artifacts == []
    assert len(found.warnings) == 1 and "name is too long" in found.warnings[0]


# ---- inputs -------------------------------------------------------------------------


def stored(blobs: ArtifactBlobs, tmp_path: Path, data: bytes) -> str:
    digest, _ = put(blobs, write(tmp_path / "uploads" / sha(data), data))
    return digest


def test_place_inputs_writes_files_with_their_content(tmp_path: Path) -> None:
    home = Home(tmp_path, cwd="proj/sub")
    one, two = b"first file", b"a,b\n1,2\n"
    files = [
        {"name": "notes.txt", "sha256": stored(home.blobs, tmp_path, one), "sizeBytes": 10},
        {"name": "data/2024/table.csv", "sha256": stored(home.blobs, tmp_path, two)},
    ]
    assert place_inputs(home.root, home.cwd, files, home.blobs, owner=os.getuid()) == 2
    inputs = home.root / "proj" / "sub" / "inputs"
    assert (inputs / "notes.txt").read_bytes() == one
    assert (inputs / "data" / "2024" / "table.csv").read_bytes() == two
    assert (inputs / "notes.txt").stat().st_uid == os.getuid()
    assert stat.S_IMODE((inputs / "notes.txt").stat().st_mode) & 0o644 == 0o644


def test_place_inputs_overwrites_an_older_file_of_the_same_name(tmp_path: Path) -> None:
    home = Home(tmp_path, cwd=".")
    write(home.root / "inputs" / "a.txt", b"an older and much longer content")
    files = [{"name": "a.txt", "sha256": stored(home.blobs, tmp_path, b"new")}]
    assert place_inputs(home.root, ".", files, home.blobs, owner=None) == 1
    assert (home.root / "inputs" / "a.txt").read_bytes() == b"new"


def test_place_inputs_with_no_files_places_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path)
    assert place_inputs(home.root, home.cwd, [], home.blobs, owner=None) == 0


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a.txt", True),
        ("dir/sub/a.txt", True),
        ("with space and ünïcode.txt", True),
        (".hidden", True),
        ("..", False),
        ("../escape.txt", False),
        ("dir/../../escape.txt", False),
        (".", False),
        ("./a.txt", False),
        ("/etc/passwd", False),
        ("", False),
        ("a//b", False),
        ("a/", False),
        ("nul\x00byte", False),
        ("x" * 256, False),
        ("x" * 255, True),
        ("/".join("d" * 9), False),  # more than 8 components
        ("/".join("d" * 8), True),
        ("/".join(["x" * 100] * 6), False),  # longer than 500 characters
    ],
)
def test_safe_name(name: str, ok: bool) -> None:
    assert safe_name(name) is ok


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "../escape.txt", "sha256": "a" * 64},
        {"name": "/abs.txt", "sha256": "a" * 64},
        {"name": "", "sha256": "a" * 64},
        {"name": "a\x00b", "sha256": "a" * 64},
        {"name": 5, "sha256": "a" * 64},
        {"name": "a.txt"},
        {"name": "a.txt", "sha256": None},
        "a.txt",
        None,
    ],
)
def test_place_inputs_refuses_unusable_entries(tmp_path: Path, entry: object) -> None:
    home = Home(tmp_path)
    with pytest.raises(PathEscape):
        place_inputs(home.root, home.cwd, [entry], home.blobs, owner=None)
    assert list(tmp_path.joinpath("outside").iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_symlinked_inputs_directory_is_not_followed(tmp_path: Path) -> None:
    home = Home(tmp_path, cwd=".")
    (home.root / "inputs").symlink_to(home.outside, target_is_directory=True)
    files = [{"name": "a.txt", "sha256": stored(home.blobs, tmp_path, b"payload")}]
    with pytest.raises(PathEscape) as caught:
        place_inputs(home.root, ".", files, home.blobs, owner=None)
    assert str(tmp_path) not in caught.value.message  # errors never name host paths
    assert list(home.outside.iterdir()) == []


def test_symlinked_working_directory_is_not_followed_for_inputs(tmp_path: Path) -> None:
    home = Home(tmp_path, cwd="proj")
    (home.root / "proj").symlink_to(home.outside, target_is_directory=True)
    files = [{"name": "a.txt", "sha256": stored(home.blobs, tmp_path, b"payload")}]
    with pytest.raises(PathEscape):
        place_inputs(home.root, "proj", files, home.blobs, owner=None)
    assert list(home.outside.iterdir()) == []


def test_symlink_at_the_input_file_name_is_not_followed(tmp_path: Path) -> None:
    home = Home(tmp_path, cwd=".")
    target = write(home.outside / "victim.txt", b"precious host file")
    write(home.outside / "dir" / "b.txt", b"also precious")
    inputs = home.root / "inputs"
    inputs.mkdir()
    (inputs / "a.txt").symlink_to(target)
    (inputs / "sub").symlink_to(home.outside / "dir", target_is_directory=True)
    digest = stored(home.blobs, tmp_path, b"attacker-chosen upload")
    # A symlinked directory on the way is refused ...
    with pytest.raises(PathEscape):
        place_inputs(home.root, ".", [{"name": "sub/b.txt", "sha256": digest}], home.blobs, None)
    # ... and a symlink at the file's own name is replaced, never written through.
    place_inputs(home.root, ".", [{"name": "a.txt", "sha256": digest}], home.blobs, None)
    assert target.read_bytes() == b"precious host file"
    assert (home.outside / "dir" / "b.txt").read_bytes() == b"also precious"
    assert not (inputs / "a.txt").is_symlink()
    assert (inputs / "a.txt").read_bytes() == b"attacker-chosen upload"


def test_missing_blob_raises_before_touching_the_home(tmp_path: Path) -> None:
    home = Home(tmp_path, cwd=".")
    write(home.root / "inputs" / "a.txt", b"from an earlier run")
    files = [{"name": "a.txt", "sha256": sha(b"never stored")}]
    with pytest.raises(FileNotFoundError):
        place_inputs(home.root, ".", files, home.blobs, owner=None)
    assert (home.root / "inputs" / "a.txt").read_bytes() == b"from an earlier run"


def test_non_hex_blob_reference_raises(tmp_path: Path) -> None:
    home = Home(tmp_path)
    files = [{"name": "a.txt", "sha256": "../../outside/secret"}]
    with pytest.raises(FileNotFoundError):
        place_inputs(home.root, home.cwd, files, home.blobs, owner=None)


def test_fifo_planted_at_the_input_name_is_refused(tmp_path: Path) -> None:
    home = Home(tmp_path, cwd=".")
    inputs = home.root / "inputs"
    inputs.mkdir()
    fifo = inputs / "a.txt"
    os.mkfifo(fifo)
    # Hold a reader open so the writer's open() returns instead of blocking forever;
    # without it, place_inputs would hang (the failure mode this test stands for).
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        files = [{"name": "a.txt", "sha256": stored(home.blobs, tmp_path, b"upload")}]
        with no_hang():
            try:
                place_inputs(home.root, ".", files, home.blobs, owner=None)
            except PathEscape:
                return  # refusing the planted FIFO is acceptable
        # otherwise the input must have been placed as a regular file
        assert stat.S_ISREG(os.lstat(fifo).st_mode), "the input was written into a FIFO"
        assert fifo.read_bytes() == b"upload"
    finally:
        os.close(reader)
