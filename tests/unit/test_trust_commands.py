# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg trust`` through the real command line (in process), on a tmp trust store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from guestpkg import cli
from guestpkg.dcfpkg import Metadata, write_dcfpkg
from guestpkg.dcfpkg.keys import LevelLog, load_keys


@pytest.fixture
def guestpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    monkeypatch.setenv("GUESTPKG_TRUSTDIR", str(tmp_path / "trust"))
    monkeypatch.setenv("GUESTPKG_LOGDIR", str(tmp_path / "log"))
    monkeypatch.setenv("GUESTPKG_CONFDIR", str(tmp_path / "etc"))
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> int:
        return cli.main(list(argv))
    return run


def _key_id(path: Path) -> str:
    return next(line.split()[1] for line in path.read_text().splitlines()
                if line.startswith("Key-Id:"))


def test_promote_and_demote(tmp_path: Path, guestpkg: Callable[..., int],
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert guestpkg("trust", "keygen", "k") == 0
    kid = _key_id(tmp_path / "k.pub")
    assert guestpkg("trust", "add-key", "k.pub", "junior") == 0
    assert guestpkg("trust", "add-key", "k.pub", "senior") == 2      # already there
    assert guestpkg("trust", "demote", kid, "senior") == 2           # that is up
    assert guestpkg("trust", "promote", kid, "senior", "--package", "hello") == 0
    assert guestpkg("trust", "promote", kid, "trusted") == 0
    [key] = load_keys(tmp_path / "trust").values()
    assert key.level == "trusted"
    assert guestpkg("trust", "demote", kid, "untrusted") == 0
    assert guestpkg("trust", "promote", kid, "junior") == 2          # stays untrusted
    actions = [(e.action, e.level, e.package) for e in LevelLog(tmp_path / "trust").read()]
    assert actions == [("add", "junior", "*"), ("promote", "senior", "hello"),
                       ("promote", "trusted", "*"), ("demote", "untrusted", "*")]
    assert "untrusted" in capsys.readouterr().err


def setuid_dcfpkg(directory: Path) -> Path:
    """*directory*/su.dcfpkg: a package with a setuid file, /usr/su."""
    (directory / "tree/usr").mkdir(parents=True)
    (directory / "tree/usr/su").write_text("x")
    (directory / "tree/usr/su").chmod(0o4755)
    path = directory / "su.dcfpkg"
    write_dcfpkg(directory / "tree", Metadata(package="su", version="1", release="1",
                                              architecture="all", build_date=0), path)
    return path


def test_sign_refuses_a_hostile_package_and_bad_dates(tmp_path: Path,
                                                      guestpkg: Callable[..., int]) -> None:
    setuid_dcfpkg(tmp_path)
    assert guestpkg("trust", "keygen", "k") == 0
    sign = ("trust", "sign", "su.dcfpkg", "--key", "k.key", "--repository", "main",
            "--archive-version", "1")
    assert guestpkg(*sign, "--expires", "2099-01-01") == 3           # setuid: refused
    assert guestpkg(*sign, "--expires", "2001-01-01") == 2           # in the past
    assert guestpkg(*sign, "--expires", "soon") == 2


@pytest.mark.parametrize("action", ["info", "list", "verify"])
def test_dcfpkg_of_a_missing_file_is_one_line(guestpkg: Callable[..., int], action: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert guestpkg("dcfpkg", action, "missing.dcfpkg") == 3
    err = capsys.readouterr().err
    assert "missing.dcfpkg" in err and "No such file" in err, err
    assert "Traceback" not in err and "bug" not in err, err


def test_dcfpkg_extract_and_trust_verify_of_a_missing_file(
        guestpkg: Callable[..., int], capsys: pytest.CaptureFixture[str]) -> None:
    assert guestpkg("dcfpkg", "extract", "missing.dcfpkg", "out") == 3
    assert guestpkg("trust", "verify", "missing.dcfpkg", "--repository", "main") in (3, 6)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "bug" not in err, err


def test_setuid_refusal_names_a_setting_that_works(
        tmp_path: Path, guestpkg: Callable[..., int], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The hint names the setting; following it, as an option and as the variable,
    makes dcfpkg verify and trust sign accept the package."""
    setuid_dcfpkg(tmp_path)
    assert guestpkg("dcfpkg", "verify", "su.dcfpkg") == 3
    err = capsys.readouterr().err
    assert "--dcfpkg-allow-setuid" in err and "GUESTPKG_DCFPKG_ALLOW_SETUID=yes" in err, err
    assert guestpkg("dcfpkg", "--dcfpkg-allow-setuid", "verify", "su.dcfpkg") == 0
    assert guestpkg("trust", "keygen", "k") == 0
    monkeypatch.setenv("GUESTPKG_DCFPKG_ALLOW_SETUID", "yes")
    assert guestpkg("trust", "sign", "su.dcfpkg", "--key", "k.key", "--repository", "main",
                    "--archive-version", "1", "--expires", "2099-01-01") == 0


def test_dcfpkg_info_and_list_escape_control_characters(
        tmp_path: Path, guestpkg: Callable[..., int],
        capsys: pytest.CaptureFixture[str]) -> None:
    """A package's text (a path, a link target, a field) reaches the terminal escaped."""
    from tests.support.dcfpkg_craft import Crafted, line

    crafted = Crafted([line("usr", "d"), line(b"usr/not-utf8-\xff", "l", "0777", target="z"),
                       line("usr/x\x1b[2J", "l", "0777", target="y\x07")])
    crafted.fields["Description"] = "hi \x1b]0;owned\x07 \x9b31m"
    (tmp_path / "p.dcfpkg").write_bytes(crafted.build())
    for action in ("info", "list", "verify"):
        assert guestpkg("dcfpkg", action, "p.dcfpkg") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, out
    assert "usr/x\\x1b[2J -> y\\x07" in out and "hi \\x1b]0;owned\\x07" in out, out
    assert "usr/not-utf8-\\xff -> z" in out, out


def test_trust_list_escapes_a_keys_comment(tmp_path: Path, guestpkg: Callable[..., int],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert guestpkg("trust", "keygen", "k", "--comment", "mallory \x1b]0;owned\x07") == 0
    assert guestpkg("trust", "add-key", "k.pub", "junior") == 0
    assert guestpkg("trust", "list") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "mallory \\x1b]0;owned\\x07" in out, out


def test_extract_refuses_a_package_swapped_after_its_signatures_were_checked(
        tmp_path: Path, guestpkg: Callable[..., int], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``dcfpkg extract --repository`` reads the file twice; whoever can write it (a
    download directory) swaps it in between.  What is extracted must be what was
    verified."""
    from guestpkg.dcfpkg.trust import TrustStore

    for name, content in (("good", "signed\n"), ("evil", "swapped in\n")):
        (tmp_path / name / "usr").mkdir(parents=True)
        (tmp_path / name / "usr/hello").write_text(content)
        write_dcfpkg(tmp_path / name, Metadata(package="hello", version="1", release="1",
                                               architecture="all", build_date=0),
                     tmp_path / f"{name}.dcfpkg")
    assert guestpkg("trust", "keygen", "k") == 0
    assert guestpkg("trust", "add-key", "k.pub", "senior") == 0
    assert guestpkg("trust", "sign", "good.dcfpkg", "--key", "k.key", "--repository", "main",
                    "--archive-version", "1", "--expires", "2099-01-01", "--archive",
                    "main.sigs") == 0
    assert guestpkg("trust", "import", "main.sigs") == 0
    package = tmp_path / "hello.dcfpkg"
    package.write_bytes((tmp_path / "good.dcfpkg").read_bytes())
    real = TrustStore.verify_package

    def then_swap(self: TrustStore, path: Path, repository: str, now: int) -> object:
        verdict = real(self, path, repository, now)
        package.write_bytes((tmp_path / "evil.dcfpkg").read_bytes())  # the attacker
        return verdict

    monkeypatch.setattr(TrustStore, "verify_package", then_swap)
    capsys.readouterr()
    assert guestpkg("dcfpkg", "extract", "hello.dcfpkg", "out", "--repository", "main") != 0
    assert "changed after its signatures were checked" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
