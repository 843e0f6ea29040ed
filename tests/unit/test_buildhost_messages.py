# SPDX-License-Identifier: GPL-2.0-or-later
"""What crosses the broker is hostile: jobs and results are checked field by field, and
the broker settings never put a secret into a URL that is shown."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from guestpkg.buildhost.broker import broker
from guestpkg.buildhost.jobs import job_from_json, result_from_json
from guestpkg.config import Config
from guestpkg.errors import ConfigError, InputError

SHA = "a" * 64
JOB: dict[str, Any] = {
    "format": 1, "job": "0" * 32, "name": "hello", "version": "2.12", "release": "1",
    "arch": "x86_64", "key": SHA, "key_text": "guestpkg-recipe-key 1\n", "bootstrap": SHA,
    "files": [["build", "x", 10, SHA], ["src", "d", 0, ""], ["src/a.c", "f", 3, SHA]],
    "inputs": [["zlib/1.3/1", SHA, True]], "jobs": 2, "repository": "recipes"}
RESULT: dict[str, Any] = {
    "format": 1, "job": "0" * 32, "host": "builder1", "sha256": SHA, "size": 100,
    "public_key": "A" * 43 + "=", "signature": "A" * 86 + "==", "expires": 1, "log_sha256": SHA,
    "seconds": 1.5, "phases": [0.25, 1.0, 0.25]}


def test_a_well_formed_job_and_result_round_trip() -> None:
    job = job_from_json(JOB)
    assert job.recipe_id == "hello/2.12/1"
    assert job.to_json() == JOB
    assert result_from_json(RESULT).to_json() == RESULT


@pytest.mark.parametrize(("field", "value"), [
    ("format", 2), ("job", "../../etc"), ("name", "-rf"), ("name", "a/b"),
    ("version", ""), ("arch", "arm64"), ("key", "A" * 64), ("bootstrap", None),
    ("files", [["../x", "f", 1, SHA]]), ("files", [["a//b", "f", 1, SHA]]),
    ("files", [["/etc/passwd", "f", 1, SHA]]), ("files", [["a", "l", 1, SHA]]),
    ("files", [["a", "f", -1, SHA]]), ("files", [["a", "f", True, SHA]]),
    ("files", [["a", "d", 0, SHA]]), ("files", [["a", "f", 1]]),
    ("files", [["a\nb", "f", 1, SHA]]), ("inputs", [["zlib", SHA, True]]),
    ("inputs", [["zlib/1/1", SHA, 1]]), ("inputs", [["zlib/1/1", "x", True]]),
    ("jobs", 0), ("jobs", True), ("repository", "--all"), ("key_text", "x" * 70000),
])
def test_a_malformed_job_is_refused(field: str, value: Any) -> None:
    bad = copy.deepcopy(JOB)
    bad[field] = value
    with pytest.raises(InputError, match="malformed message from the broker"):
        job_from_json(bad)


@pytest.mark.parametrize(("field", "value"), [
    ("host", "Evil Host"), ("sha256", "0" * 63), ("size", -1), ("size", 1.0),
    ("public_key", "not base64!"), ("signature", ""), ("seconds", "1"), ("seconds", True),
    ("log_sha256", None), ("job", 7), ("seconds", float("nan")), ("seconds", 1e300),
    ("phases", [1, 2]), ("phases", [1, 2, -3]), ("phases", [1, 2, float("inf")]),
    ("phases", "1 2 3"), ("phases", [1, 2, True]),
])
def test_a_malformed_result_is_refused(field: str, value: Any) -> None:
    bad = copy.deepcopy(RESULT)
    bad[field] = value
    with pytest.raises(InputError, match="malformed message from the broker"):
        result_from_json(bad)


def config(tmp_path: Path, url: str, password: str = "p@ss:w/rd\n") -> Config:
    (tmp_path / "pw").write_text(password)
    return Config.defaults(broker=url, broker_password_file=tmp_path / "pw",
                           broker_user="builder")


def test_the_password_is_in_the_login_never_in_the_shown_url(tmp_path: Path) -> None:
    b = broker(config(tmp_path, "redis://10.0.0.1:6380/2"))
    assert b.url == "redis://builder:p%40ss%3Aw%2Frd@10.0.0.1:6380/2"
    assert b.shown == "redis://10.0.0.1:6380/2" and b.ssl is None
    tls = broker(config(tmp_path, "rediss://broker.example.org/0"))
    assert tls.ssl is not None and tls.shown == "rediss://broker.example.org:6379/0"


@pytest.mark.parametrize("url", ["", "http://x/0", "redis://u:p@x/0", "redis:///0",
                                 "redis://x/0?password=p", "redis://x/db"])
def test_a_broker_url_naming_a_secret_or_no_server_is_refused(tmp_path: Path,
                                                              url: str) -> None:
    with pytest.raises(ConfigError):
        broker(config(tmp_path, url))


def test_a_missing_or_multiline_password_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="on one line"):
        broker(config(tmp_path, "redis://x/0", "a\nb\n"))
    with pytest.raises(ConfigError, match="can't read the broker password"):
        broker(Config.defaults(broker="redis://x/0", broker_password_file=tmp_path / "no"))


@pytest.mark.parametrize("module", ["celery", "redis"])
def test_buildhosts_without_their_suggested_packages_say_what_to_install(
        monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    # python3-celery and python3-redis are only Suggested by guestpkg.
    from guestpkg.buildhost.broker import Broker, client, make_app
    from guestpkg.errors import SystemStateError

    monkeypatch.setitem(__import__("sys").modules, module, None)   # import fails
    b = Broker("redis://u:p@127.0.0.1:1/0", "redis://127.0.0.1:1/0", None, 1.0)
    with pytest.raises(SystemStateError) as error:
        make_app(b) if module == "celery" else client(b)
    assert error.value.hint == "apt-get install python3-celery python3-redis"
