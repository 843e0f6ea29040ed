# SPDX-License-Identifier: GPL-2.0-or-later
"""The dcfpkg encoding and the writer: escaping, stanzas, order, determinism."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from guestpkg.dcfpkg import Metadata, extract, read_manifest, verify, write_dcfpkg
from guestpkg.dcfpkg.format import escape, parse_line, sort_key, unescape
from guestpkg.dcfpkg.reader import ReaderPolicy
from guestpkg.dcfpkg.stanza import format_stanza, parse_stanzas
from guestpkg.dcfpkg.writer import scan_tree
from guestpkg.errors import InputError, ParseError

META = Metadata(package="hello", version="2.10", release="1", architecture="amd64",
                build_date=1700000000, depends="libc6 (>= 2.34)", source="recipes/hello/2.10/1")


@pytest.mark.parametrize("name", [b"plain", b"with space", b"back\\slash", b"new\nline",
                                  b"\xff\xfe latin", b"-", b"caf\xc3\xa9"])
def test_escape_round_trips(name: bytes) -> None:
    escaped = escape(name)
    assert all(0x21 <= b < 0x7F for b in escaped)
    assert unescape(escaped, "x", 1) == name


def test_manifest_line_round_trip() -> None:
    line = b"usr/bin/a\\040b f 0755 0:0 3 " + b"a" * 64 + b" -"
    entry = parse_line(line, "m", 1)
    assert entry.path == b"usr/bin/a b" and entry.mode == 0o755 and entry.size == 3
    assert entry.to_line() == line + b"\n"


def test_sort_by_components_puts_a_directory_before_its_contents() -> None:
    paths = [b"a-b", b"a/b", b"a", b"a/b/c", b"a.b"]
    assert sorted(paths, key=sort_key) == [b"a", b"a/b", b"a/b/c", b"a-b", b"a.b"]


def test_stanza_parse_and_errors() -> None:
    text = "Package: x\nDescription: short\n long\n\nOther: y\n"
    first, second = parse_stanzas(text, "f")
    assert first.fields == {"Package": "x", "Description": "short\nlong"}
    assert second.first_line == 5
    with pytest.raises(ParseError, match="f:2: duplicate field"):
        parse_stanzas("A: 1\nA: 2\n", "f")
    with pytest.raises(ParseError, match="f:1: continuation"):
        parse_stanzas(" x\n", "f")
    assert format_stanza({"A": "1", "B": "two\nlines"}) == "A: 1\nB: two\n lines\n"


def test_metadata_round_trip() -> None:
    from dataclasses import replace

    meta = replace(META, entries=3, installed_size=10, manifest_size=100,
                   manifest_sha256="a" * 64, payload_size=50, payload_sha256="b" * 64,
                   extra=(("X-Recipe-Hash", "abc"),))
    text = meta.to_bytes().decode()
    assert text.startswith("dcfpkg 1\nPackage: hello\n") and text.endswith("\n\n")
    stanza = parse_stanzas(text.split("\n", 1)[1], "m")[0]
    assert Metadata.from_stanza(stanza, "m") == meta


def _tree(root: Path, order: list[str]) -> Path:
    """A small tree with a hard link, a symlink, odd names and modes, created in *order*."""
    files = {"usr/bin/hello": (b"#!/bin/sh\necho hi\n", 0o755),
             "usr/share/doc/hello/copyright": (b"GPL\n", 0o644),
             "usr/share/doc/hello/na me\nx": (b"odd\n", 0o600),
             "usr/lib/empty": (b"", 0o644)}
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[name][0])
        path.chmod(files[name][1])
    os.link(root / "usr/bin/hello", root / "usr/bin/hi")
    os.symlink("hello", root / "usr/bin/hey")
    (root / "usr/share/empty-dir").mkdir(mode=0o700)
    return root


def test_same_tree_same_bytes_whatever_the_creation_order(tmp_path: Path) -> None:
    names = ["usr/bin/hello", "usr/share/doc/hello/copyright", "usr/share/doc/hello/na me\nx",
             "usr/lib/empty"]
    one = _tree(tmp_path / "one", names)
    two = _tree(tmp_path / "two", list(reversed(names)))
    os.utime(two / "usr/bin/hello", (1, 1))
    write_dcfpkg(one, META, tmp_path / "one.dcfpkg")
    write_dcfpkg(two, META, tmp_path / "two.dcfpkg")
    assert (tmp_path / "one.dcfpkg").read_bytes() == (tmp_path / "two.dcfpkg").read_bytes()


def test_round_trip_and_repack_are_bit_identical(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", ["usr/bin/hello", "usr/lib/empty",
                                     "usr/share/doc/hello/copyright",
                                     "usr/share/doc/hello/na me\nx"])
    final = write_dcfpkg(tree, META, tmp_path / "a.dcfpkg")
    assert verify(tmp_path / "a.dcfpkg") == final
    extract(tmp_path / "a.dcfpkg", tmp_path / "x")
    hello = tmp_path / "x/usr/bin/hello"
    assert hello.read_bytes() == b"#!/bin/sh\necho hi\n"
    assert hello.stat().st_ino == (tmp_path / "x/usr/bin/hi").stat().st_ino
    assert os.readlink(tmp_path / "x/usr/bin/hey") == "hello"
    assert stat.S_IMODE((tmp_path / "x/usr/share/empty-dir").stat().st_mode) == 0o700
    assert hello.stat().st_mtime == META.build_date
    write_dcfpkg(tmp_path / "x", META, tmp_path / "b.dcfpkg")
    assert (tmp_path / "a.dcfpkg").read_bytes() == (tmp_path / "b.dcfpkg").read_bytes()


def test_manifest_lists_types_and_normalised_owners(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", ["usr/bin/hello", "usr/lib/empty",
                                     "usr/share/doc/hello/copyright",
                                     "usr/share/doc/hello/na me\nx"])
    if os.geteuid() == 0:
        os.chown(tree / "usr/lib/empty", 1234, 5678)
    write_dcfpkg(tree, META, tmp_path / "a.dcfpkg")
    meta, entries = read_manifest(tmp_path / "a.dcfpkg")
    kinds = {e.path: e.kind for e in entries}
    assert kinds[b"usr/bin/hello"] == "f" and kinds[b"usr/bin/hi"] == "h"
    assert kinds[b"usr/bin/hey"] == "l" and kinds[b"usr/share/empty-dir"] == "d"
    assert {(e.uid, e.gid) for e in entries} == {(0, 0)}
    assert meta.entries == len(entries) and meta.installed_size == 18 + 4 + 4
    kept = {e.path: (e.uid, e.gid) for e in scan_tree(tree, keep_owners=True)}
    st = (tree / "usr/lib/empty").lstat()
    assert kept[b"usr/lib/empty"] == (st.st_uid, st.st_gid) and len(kept) == len(entries)


def test_zstd_output_does_not_depend_on_the_thread_count(tmp_path: Path) -> None:
    import zstandard

    data = os.urandom(1 << 16) * 200   # 13 MB: several zstd jobs
    outputs = set()
    for threads in (1, 2, 4):
        outputs.add(zstandard.ZstdCompressor(level=3, threads=threads, write_checksum=True)
                    .compress(data))
    assert len(outputs) == 1


def test_prefix_places_the_tree(tmp_path: Path) -> None:
    (tmp_path / "doc").mkdir()
    (tmp_path / "doc/README").write_text("x")
    write_dcfpkg(tmp_path / "doc", META, tmp_path / "p.dcfpkg", prefix="usr/share/doc")
    _, entries = read_manifest(tmp_path / "p.dcfpkg")
    assert [e.path for e in entries] == [b"usr", b"usr/share", b"usr/share/doc",
                                         b"usr/share/doc/README"]


def test_writer_refuses_fifos(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    os.mkfifo(tmp_path / "tree/fifo")
    with pytest.raises(InputError, match="FIFOs"):
        write_dcfpkg(tmp_path / "tree", META, tmp_path / "a.dcfpkg")
    assert not (tmp_path / "a.dcfpkg").exists()


def test_writer_keeps_setuid_and_the_reader_needs_permission(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree/su").write_text("x")
    (tmp_path / "tree/su").chmod(0o4755)
    write_dcfpkg(tmp_path / "tree", META, tmp_path / "a.dcfpkg")
    with pytest.raises(InputError, match="setuid"):
        verify(tmp_path / "a.dcfpkg")
    verify(tmp_path / "a.dcfpkg", ReaderPolicy(allow_setuid=True))


def test_invalid_identity_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="Package"):
        write_dcfpkg(tmp_path, replace(META, package="Bad/Name"), tmp_path / "a.dcfpkg")


def test_walk_order_is_the_manifest_order(tmp_path: Path) -> None:
    """The writer walks depth first with names in byte order; the reader demands order
    by path components: they must agree on names that sort around "/"."""
    tree = tmp_path / "tree"
    for name in (b"a/b/c", b"a-b/x", b"a.b/y", b"a b/z", b"a\xff/w", b"A/v", b"a0/u"):
        path = os.path.join(os.fsencode(tree), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(name)
    write_dcfpkg(tree, META, tmp_path / "a.dcfpkg")
    _, entries = read_manifest(tmp_path / "a.dcfpkg")
    paths = [e.path for e in entries]
    assert paths == sorted(paths, key=sort_key) and len(paths) == 15


def _sized(meta: Metadata) -> Metadata:
    from dataclasses import replace

    return replace(meta, entries=3, installed_size=10, manifest_size=100,
                   manifest_sha256="a" * 64, payload_size=50, payload_sha256="b" * 64)


def test_origin_fields_round_trip() -> None:
    """A recipe's meta, rundeps, inputs and key, and a seed's Debian provenance."""
    from dataclasses import replace

    meta = _sized(replace(
        META, depends="zlib, m4", homepage="https://zlib.net/", license="Zlib",
        maintainer="A Person <a@example.org>", recipe_key="c" * 64, bootstrap_set="d" * 64,
        inputs=("make/4.3/1 " + "e" * 64, "curl/8.0/1 " + "f" * 64 + " latest")))
    text = meta.to_bytes().decode()
    assert f"Inputs:\n make/4.3/1 {'e' * 64}\n curl/8.0/1 {'f' * 64} latest\n" in text
    stanza = parse_stanzas(text.split("\n", 1)[1], "m")[0]
    assert Metadata.from_stanza(stanza, "m") == meta
    seed = _sized(replace(META, provenance="libc6 2.36-9+deb12u4 " + "1" * 64))
    stanza = parse_stanzas(seed.to_bytes().decode().split("\n", 1)[1], "m")[0]
    assert Metadata.from_stanza(stanza, "m").provenance == "libc6 2.36-9+deb12u4 " + "1" * 64


@pytest.mark.parametrize(("field", "value"), [
    ("Homepage", "javascript:alert(1)"),
    ("Provenance", "libc6 2.36"),
    ("Provenance", "Libc6 2.36-9 " + "1" * 64),
    ("Provenance", "libc6 -2 " + "1" * 64),
    ("Recipe-Key", "abc"),
    ("Bootstrap-Set", "A" * 64),
    ("Inputs", "\n ../x/1/1 " + "e" * 64),
    ("Inputs", "\n make/4.3/1 " + "e" * 64 + " newest"),
    ("Inputs", "make/4.3/1 " + "e" * 64),
    ("Maintainer", "two\n lines"),
])
def test_malformed_origin_fields_refused_at_their_line(field: str, value: str) -> None:
    text = _sized(META).to_bytes().decode().split("\n", 1)[1]
    text = text.replace("Build-Date:", f"{field}: {value}\nBuild-Date:")
    stanza = parse_stanzas(text, "m")[0]
    with pytest.raises(ParseError, match=f"^m:{stanza.lines[field]}: {field}"):
        Metadata.from_stanza(stanza, "m")
