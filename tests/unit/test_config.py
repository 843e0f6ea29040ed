# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from guestpkg import cli, config
from guestpkg.errors import ConfigError


def test_table_matches_config_fields() -> None:
    fields = [f.name for f in dataclasses.fields(config.Config)]
    assert fields == [s.name for s in config.SETTINGS]


def test_precedence_cli_env_file_default(tmp_path: Path) -> None:
    (tmp_path / "guestpkg.conf").write_text("user = fromfile\njobs = 3\nbuildroot = fromfile\n")
    snippets = tmp_path / "guestpkg.conf.d"
    snippets.mkdir()
    (snippets / "10-a.conf").write_text("# a comment\nbuildroot = snippet\n")
    env = {"GUESTPKG_JOBS": "5", "GUESTPKG_USER": "fromenv"}
    cfg = config.load({"user": "fromcli"}, env, tmp_path)
    assert cfg.user == "fromcli"          # CLI beats env
    assert cfg.jobs == 5                  # env beats file
    assert cfg.buildroot == "snippet"     # a .conf.d snippet beats guestpkg.conf
    assert cfg.preserve_build == "never"  # default
    assert cfg.vardir == Path("/var/lib/guestpkg")


def test_bad_values_name_their_origin(tmp_path: Path) -> None:
    (tmp_path / "guestpkg.conf").write_text("network = perhaps\n")
    with pytest.raises(ConfigError, match=r"guestpkg.conf: bad value for network"):
        config.load({}, {}, tmp_path)
    with pytest.raises(ConfigError, match="GUESTPKG_TIMEOUT"):
        config.load({}, {"GUESTPKG_TIMEOUT": "soon"}, tmp_path / "none")


def test_unknown_key_and_syntax_errors_carry_path_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "guestpkg.conf"
    conf.write_text("\nbuldroot = x\n")
    with pytest.raises(ConfigError, match=r"guestpkg.conf:2: unknown setting 'buldroot'"):
        config.load({}, {}, tmp_path)
    conf.write_text("just words\n")
    with pytest.raises(ConfigError, match=r"guestpkg.conf:1: expected"):
        config.load({}, {}, tmp_path)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("15m", 900), ("3h", 10800), ("0", 0)])
def test_parse_seconds(text: str, seconds: float) -> None:
    assert config.parse_seconds(text) == seconds


def test_parse_size() -> None:
    assert config.parse_size("64M") == 64 << 20
    assert config.parse_size("2GiB") == 2 << 30


def test_every_command_option_comes_from_the_table() -> None:
    for command in cli.COMMANDS:
        for s in config.SETTINGS:
            if command.name in s.commands:
                assert s.option.startswith("--")
    names = {c.name for c in cli.COMMANDS}
    for s in config.SETTINGS:
        assert set(s.commands) <= names, s.name
