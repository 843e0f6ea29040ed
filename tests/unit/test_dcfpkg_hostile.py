# SPDX-License-Identifier: GPL-2.0-or-later
"""The hostile-archive suite: every refusal of the reader, each asserting that nothing
was written (no destination, no temporary directory, nothing outside).

The packages are made with tests/support/dcfpkg_craft.py, which computes correct
digests unless told otherwise, so each one is refused for the rule it breaks.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zstandard

from guestpkg.dcfpkg.reader import ReaderPolicy, extract, read_manifest, verify
from guestpkg.errors import InputError, UnsafeArchive
from tests.support.dcfpkg_craft import Crafted, file_line, line, sha, simple

DATA = b"hello\n"


def refuse(tmp_path: Path, crafted: Crafted, match: str,
           policy: ReaderPolicy | None = None) -> None:
    """*crafted* must be refused by extract and verify, and leave nothing behind."""
    package = tmp_path / "pkg.dcfpkg"
    package.write_bytes(crafted.build())
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=match):
        extract(package, out / "dest", policy)
    assert os.listdir(out) == [], "a refused package left files behind"
    with pytest.raises(InputError, match=match):
        verify(package, policy)
    assert sorted(os.listdir(tmp_path)) == ["out", "pkg.dcfpkg"]


def test_the_valid_base_case_is_accepted(tmp_path: Path) -> None:
    package = tmp_path / "ok.dcfpkg"
    package.write_bytes(simple().build())
    extract(package, tmp_path / "dest")
    assert (tmp_path / "dest/usr/hello").read_bytes() == DATA


# -- the header ----------------------------------------------------------------------

def test_bad_magic(tmp_path: Path) -> None:
    crafted = simple()
    crafted.magic = b"!<arch>\n"
    refuse(tmp_path, crafted, "bad magic")


def test_endless_metadata_stanza(tmp_path: Path) -> None:
    refuse(tmp_path, simple(Description="x" * (70 << 10)), "too long")


def test_unknown_field(tmp_path: Path) -> None:
    refuse(tmp_path, simple(**{"Pre-Install-Script": "rm -rf /"}), "unknown field")


def test_missing_field(tmp_path: Path) -> None:
    refuse(tmp_path, simple(**{"Payload-SHA256": None}), "missing field Payload-SHA256")


def test_other_compression(tmp_path: Path) -> None:
    refuse(tmp_path, simple(Compression="xz"), "only zstd")


def test_bad_package_name(tmp_path: Path) -> None:
    refuse(tmp_path, simple(Package="../../etc"), "Package")


def test_truncated_file(tmp_path: Path) -> None:
    crafted = simple()
    full = crafted.build()
    crafted.payload = full[full.index(b"\n\n") + 2:][:-5]
    crafted.fields["Payload-Size"] = str(len(crafted.payload) + 5)
    refuse(tmp_path, crafted, "the header says")


def test_data_appended_after_the_payload(tmp_path: Path) -> None:
    crafted = simple()
    crafted.appended = b"trailing"
    refuse(tmp_path, crafted, "appended")


# -- caps ------------------------------------------------------------------------------

def test_entry_count_cap(tmp_path: Path) -> None:
    refuse(tmp_path, simple(), "Entries 2 is over the cap", ReaderPolicy(max_entries=1))


def test_installed_size_cap(tmp_path: Path) -> None:
    refuse(tmp_path, simple(), "Installed-Size 6 is over", ReaderPolicy(max_installed_bytes=5))


def test_manifest_size_cap(tmp_path: Path) -> None:
    refuse(tmp_path, simple(), "Manifest-Size", ReaderPolicy(max_manifest_bytes=10))


def test_zstd_window_cap(tmp_path: Path) -> None:
    """A frame that asks for a 256 MiB window is refused before it gets the memory."""
    crafted = simple()
    manifest = b"".join(crafted.lines)
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=28)
    sink = _Sink()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(
            sink, closefd=False) as writer:  # no content size: the window stays 2**28
        writer.write(manifest + DATA)
    crafted.payload = bytes(sink.data)
    assert zstandard.get_frame_parameters(crafted.payload).window_size == 1 << 28
    refuse(tmp_path, crafted, "bad zstd data")


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def test_decompression_bomb_behind_the_last_file(tmp_path: Path) -> None:
    """Installed-Size says 6 bytes; the stream goes on with a gigabyte of zeros."""
    crafted = simple()
    manifest = b"".join(crafted.lines)
    compressor = zstandard.ZstdCompressor(level=19)
    bomb = compressor.compress(manifest + DATA) + compressor.compress(bytes(1 << 30))
    crafted.payload = bomb
    refuse(tmp_path, crafted, "data after the last file")


# -- digests ---------------------------------------------------------------------------

def test_manifest_digest_mismatch(tmp_path: Path) -> None:
    refuse(tmp_path, simple(**{"Manifest-SHA256": sha(b"other")}), "manifest SHA256")


def test_file_digest_mismatch_after_other_files_were_written(tmp_path: Path) -> None:
    first, second = b"first file\n", b"second file\n"
    crafted = Crafted([line("a", "d"), file_line("a/one", first),
                       line("a/two", "f", "0644", size=len(second), digest=sha(b"not it"))],
                      first + second)
    refuse(tmp_path, crafted, "SHA256 mismatch")


def test_payload_digest_mismatch(tmp_path: Path) -> None:
    refuse(tmp_path, simple(**{"Payload-SHA256": sha(b"other")}), "Payload-SHA256 mismatch")


def test_entries_field_disagrees(tmp_path: Path) -> None:
    refuse(tmp_path, simple(Entries="3"), "Entries says 3")


def test_installed_size_field_disagrees(tmp_path: Path) -> None:
    refuse(tmp_path, simple(**{"Installed-Size": "7"}), "Installed-Size says 7")


def test_stream_shorter_than_the_manifest_says(tmp_path: Path) -> None:
    crafted = Crafted([line("a", "d"), line("a/big", "f", "0644", size=1000,
                                           digest=sha(bytes(1000)))], b"short")
    crafted.fields["Installed-Size"] = "1000"
    refuse(tmp_path, crafted, "ends early")


# -- paths -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/etc/passwd", "usr/../../etc/passwd", "..", "usr/./x",
                                  "usr//x", "usr/x/"])
def test_bad_paths(tmp_path: Path, path: str) -> None:
    crafted = Crafted([line("usr", "d"), file_line(path, DATA)], DATA)
    refuse(tmp_path, crafted, "absolute|component|parent|order")


def test_nul_in_path(tmp_path: Path) -> None:
    crafted = Crafted([line("usr", "d"), file_line("usr/a\\000b", DATA)], DATA)
    refuse(tmp_path, crafted, "absolute")


def test_parent_not_listed(tmp_path: Path) -> None:
    refuse(tmp_path, Crafted([file_line("usr/hello", DATA)], DATA), "parent")


def test_out_of_order(tmp_path: Path) -> None:
    crafted = Crafted([line("usr", "d"), file_line("usr/b", DATA), file_line("usr/a", DATA)],
                      DATA + DATA)
    refuse(tmp_path, crafted, "out of order")


def test_duplicate_path_last_one_does_not_win(tmp_path: Path) -> None:
    crafted = Crafted([line("usr", "d"), file_line("usr/a", DATA), file_line("usr/a", DATA)],
                      DATA + DATA)
    refuse(tmp_path, crafted, "out of order or repeated")


def test_write_through_a_symlink(tmp_path: Path) -> None:
    """The classic: a symlink to /etc, then a file "inside" it."""
    crafted = Crafted([line("usr", "d"), line("usr/etc", "l", "0777", target="/etc"),
                       file_line("usr/etc/passwd", DATA)], DATA)
    refuse(tmp_path, crafted, "parent")


# -- links -----------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["../../etc/shadow", "../..", "/../etc", "a/../../.."])
def test_symlink_leaving_the_root(tmp_path: Path, target: str) -> None:
    crafted = Crafted([line("usr", "d"), line("usr/x", "l", "0777", target=target)])
    refuse(tmp_path, crafted, "leaves the package root")


# The kernel resolves a link target component by component, following every link it
# meets: a target that reads as harmless text can climb out through another link.
@pytest.mark.parametrize("links", [
    # t -> d1/s/..  with d1/s -> ..: d1/s is the root, so t is the root's parent
    [("d1", "d"), ("d1/s", "l", ".."), ("t", "l", "d1/s/..")],
    # the same through a link that comes later in the manifest
    [("a", "l", "z/up/.."), ("z", "d"), ("z/up", "l", "..")],
    # an absolute target resolved from the root, through a chain of two links
    [("usr", "d"), ("usr/a", "l", "/usr/b/../.."), ("usr/b", "l", "c"), ("usr/c", "l", "/")],
    # text that stays inside if usr/b were a directory; it is a link to the root
    [("usr", "d"), ("usr/a", "l", "b/x/../../.."), ("usr/b", "l", "/")],
])
def test_symlink_leaving_the_root_through_other_links(
        tmp_path: Path, links: list[tuple[str, ...]]) -> None:
    lines = [line(path, "d") if kind == "d" else line(path, "l", "0777", target=rest[0])
             for path, kind, *rest in links]
    crafted = Crafted(sorted(lines, key=lambda b: b.split(b" ")[0].split(b"/")))
    refuse(tmp_path, crafted, "leaves the package root")


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    crafted = Crafted([line("usr", "d"), line("usr/a", "l", "0777", target="b/x"),
                       line("usr/b", "l", "0777", target="a/y")])
    refuse(tmp_path, crafted, "loop")


def test_symlinks_through_links_that_stay_inside_are_accepted(tmp_path: Path) -> None:
    package = tmp_path / "ok.dcfpkg"
    package.write_bytes(Crafted([
        line("usr", "d"), line("usr/bin", "d"), line("usr/bin/awk", "l", "0777",
                                                     target="/etc/alternatives/awk"),
        line("usr/bin/sh", "l", "0777", target="../lib/x/../../bin/awk"),
        line("usr/lib", "l", "0777", target="share"), line("usr/share", "d"),
        line("usr/share/x", "l", "0777", target=".")]).build())
    extract(package, tmp_path / "dest")
    assert os.readlink(tmp_path / "dest/usr/bin/sh") == "../lib/x/../../bin/awk"


def test_symlink_with_other_mode(tmp_path: Path) -> None:
    crafted = Crafted([line("usr", "d"), line("usr/x", "l", "4755", target="y")])
    refuse(tmp_path, crafted, "setuid", ReaderPolicy())
    refuse_again = Crafted([line("usr", "d"), line("usr/x", "l", "0755", target="y")])
    (tmp_path / "out").rmdir()
    refuse(tmp_path, refuse_again, "0777")


@pytest.mark.parametrize("target", ["usr/later", "usr", "usr/link", "/etc/shadow",
                                    "usr/none", "usr/hard"])
def test_hardlink_to_anything_but_an_earlier_regular_file(tmp_path: Path, target: str) -> None:
    crafted = Crafted([line("usr", "d"), line("usr/hard", "h", "0644", target="usr/first"),
                       line("usr/link", "l", "0777", target="first"),
                       line("usr/x", "h", "0644", target=target),
                       file_line("usr/later", DATA)], DATA)
    crafted.lines.insert(1, file_line("usr/first", DATA))
    crafted.contents = DATA + DATA
    refuse(tmp_path, crafted, "not an earlier regular file")


def test_hardlink_changing_its_targets_mode(tmp_path: Path) -> None:
    crafted = Crafted([line("usr", "d"), file_line("usr/a", DATA),
                       line("usr/b", "h", "0755", target="usr/a")], DATA)
    refuse(tmp_path, crafted, "mode or owner differs")


# -- types and modes -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["c", "b", "p", "s", "x"])
def test_devices_fifos_and_sockets(tmp_path: Path, kind: str) -> None:
    crafted = Crafted([line("dev", "d"), line("dev/sda", kind, "0666")])
    refuse(tmp_path, crafted, "devices, FIFOs and sockets are not allowed")


@pytest.mark.parametrize("mode", ["4755", "2755", "6755"])
def test_setuid_and_setgid_refused_by_default(tmp_path: Path, mode: str) -> None:
    crafted = Crafted([line("usr", "d"), file_line("usr/su", DATA, mode)], DATA)
    refuse(tmp_path, crafted, "setuid or setgid")


def test_setuid_allowed_by_policy(tmp_path: Path) -> None:
    package = tmp_path / "su.dcfpkg"
    package.write_bytes(Crafted([line("usr", "d"), file_line("usr/su", DATA, "4755")],
                                DATA).build())
    extract(package, tmp_path / "dest", ReaderPolicy(allow_setuid=True))
    assert (tmp_path / "dest/usr/su").stat().st_mode & 0o7777 == 0o4755


def test_bad_columns(tmp_path: Path) -> None:
    crafted = Crafted([b"usr d 0755 0:0 0 -\n"])
    refuse(tmp_path, crafted, "7 columns")


def test_bad_escape(tmp_path: Path) -> None:
    crafted = Crafted([line("usr\\9", "d")])
    refuse(tmp_path, crafted, "bad escape")


# -- the destination -------------------------------------------------------------------

def test_existing_destination_is_left_alone(tmp_path: Path) -> None:
    package = tmp_path / "ok.dcfpkg"
    package.write_bytes(simple().build())
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine").write_text("keep")
    with pytest.raises(UnsafeArchive, match="already exists"):
        extract(package, dest)
    assert os.listdir(dest) == ["mine"]


def test_list_refuses_without_reading_contents(tmp_path: Path) -> None:
    package = tmp_path / "pkg.dcfpkg"
    package.write_bytes(Crafted([line("usr", "d"), line("usr/x", "l", "0777",
                                                         target="../../x")]).build())
    with pytest.raises(UnsafeArchive, match="leaves"):
        read_manifest(package)


def test_setuid_hint_names_what_applies_at_each_front_door(tmp_path: Path) -> None:
    """``guestpkg dcfpkg`` can be told to allow setuid files; a recipe's build chroot
    never: its refusal must not send the user to a setting that changes nothing."""
    from guestpkg import config
    from guestpkg.commands.dcfpkg import policy as dcfpkg_policy
    from guestpkg.recipe.layers import policy as recipe_policy

    package = tmp_path / "su.dcfpkg"
    package.write_bytes(Crafted([line("usr", "d"), file_line("usr/su", DATA, "4755")],
                                DATA).build())
    cfg = config.load({}, {}, tmp_path / "etc")
    with pytest.raises(UnsafeArchive) as dcfpkg_error:
        verify(package, dcfpkg_policy(cfg))
    assert "--dcfpkg-allow-setuid" in (dcfpkg_error.value.hint or "")
    with pytest.raises(UnsafeArchive) as recipe_error:
        verify(package, recipe_policy(cfg))
    assert "allow-setuid" not in (recipe_error.value.hint or "")
    assert "recipe" in (recipe_error.value.hint or ""), recipe_error.value.hint
