# SPDX-License-Identifier: GPL-2.0-or-later
"""What goes over the broker: a job (one recipe build) and its result, as JSON.

Both sides treat what they receive as hostile: :func:`job_from_json` and
:func:`result_from_json` check every field's type, shape and size before anything uses
it (names and paths as the recipe reader would accept them, digests as SHA256), and
refuse anything else.  Files are named by SHA256 only (:mod:`.blobs`).

Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from guestpkg.debian.deb822 import is_sha256
from guestpkg.errors import InputError
from guestpkg.recipe.files import ARCHES

FORMAT = 1
_JOB_ID = re.compile(r"\A[0-9a-f]{32}\Z")
_PART = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}\Z")
_PATH_PART = re.compile(r"\A(?!\.\.?\Z)[A-Za-z0-9._+~@%,=:-]{1,255}\Z")
_HOST = re.compile(r"\A[a-z0-9][a-z0-9.-]{0,62}\Z")
_B64 = re.compile(r"\A[A-Za-z0-9+/]{1,200}={0,2}\Z")
MAX_FILES = 1000
MAX_INPUTS = 10_000
MAX_TEXT = 1 << 16


@dataclass(frozen=True)
class JobFile:
    path: str
    kind: str           # "d" directory, "f" file, "x" executable file
    size: int
    sha256: str         # "" for a directory


@dataclass(frozen=True)
class JobInput:
    recipe_id: str
    sha256: str
    in_key: bool


@dataclass(frozen=True)
class Job:
    job_id: str
    name: str
    version: str
    release: str
    arch: str
    key: str
    key_text: str
    bootstrap: str
    files: tuple[JobFile, ...]
    inputs: tuple[JobInput, ...]
    jobs: int
    repository: str

    @property
    def recipe_id(self) -> str:
        return f"{self.name}/{self.version}/{self.release}"

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "job": self.job_id, "name": self.name,
                "version": self.version, "release": self.release, "arch": self.arch,
                "key": self.key, "key_text": self.key_text, "bootstrap": self.bootstrap,
                "files": [[f.path, f.kind, f.size, f.sha256] for f in self.files],
                "inputs": [[i.recipe_id, i.sha256, i.in_key] for i in self.inputs],
                "jobs": self.jobs, "repository": self.repository}


@dataclass(frozen=True)
class JobResult:
    job_id: str
    host: str
    sha256: str
    size: int
    public_key: str     # base64 of the raw Ed25519 key that signed
    signature: str      # base64
    expires: int
    log_sha256: str
    seconds: float
    #: seconds the host spent fetching the job's files and inputs, building, and
    #: signing and sending the result (reported in the coordinator's log)
    phases: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "job": self.job_id, "host": self.host,
                "sha256": self.sha256, "size": self.size, "public_key": self.public_key,
                "signature": self.signature, "expires": self.expires,
                "log_sha256": self.log_sha256, "seconds": self.seconds,
                "phases": list(self.phases)}


def _bad(what: str) -> InputError:
    return InputError(f"malformed message from the broker: {what}")


def _get(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if type(value) is not kind:  # bool is an int: exact types only
        raise _bad(f"{name} is not a {kind.__name__}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise _bad(f"{name} is too long")
    return value


def _sha(value: Any, what: str) -> str:
    if not isinstance(value, str) or not is_sha256(value):
        raise _bad(f"{what} is not a SHA256")
    return value


def _file(entry: Any) -> JobFile:
    if not isinstance(entry, list) or len(entry) != 4:
        raise _bad("a recipe file entry is not [path, kind, size, sha256]")
    path, kind, size, sha256 = entry
    if (not isinstance(path, str) or not path or len(path) > 4096
            or not all(_PATH_PART.match(p) for p in path.split("/"))):
        raise _bad(f"recipe file path {str(path)[:60]!r}")
    if kind not in ("d", "f", "x") or type(size) is not int or not 0 <= size <= 64 << 20:
        raise _bad(f"recipe file {path}: kind or size")
    if kind == "d":
        if sha256 != "" or size != 0:
            raise _bad(f"recipe directory {path} has a digest")
    else:
        _sha(sha256, f"recipe file {path}")
    return JobFile(path, kind, size, sha256)


def job_from_json(data: Any) -> Job:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad("not a guestpkg job of format 1")
    job_id = _get(data, "job", str)
    if not _JOB_ID.match(job_id):
        raise _bad("job id")
    parts = [_get(data, n, str) for n in ("name", "version", "release")]
    if not all(_PART.match(p) for p in parts):
        raise _bad("recipe name, version or release")
    arch = _get(data, "arch", str)
    if arch not in ARCHES:
        raise _bad(f"architecture {arch[:20]!r}")
    files = _get(data, "files", list)
    inputs = _get(data, "inputs", list)
    if len(files) > MAX_FILES or len(inputs) > MAX_INPUTS:
        raise _bad("too many files or inputs")
    parsed_inputs = []
    for entry in inputs:
        if (not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[0], str)
                or len(entry[0].split("/")) != 3
                or not all(_PART.match(p) for p in entry[0].split("/"))
                or type(entry[2]) is not bool):
            raise _bad("an input is not [recipe id, sha256, in key]")
        parsed_inputs.append(JobInput(entry[0], _sha(entry[1], f"input {entry[0]}"), entry[2]))
    jobs = _get(data, "jobs", int)
    if not 1 <= jobs <= 1024:
        raise _bad("jobs")
    repository = _get(data, "repository", str)
    if not _PART.match(repository):
        raise _bad("repository")
    name, version, release = parts
    return Job(job_id, name, version, release, arch, _sha(data.get("key"), "key"),
               _get(data, "key_text", str), _sha(data.get("bootstrap"), "bootstrap set id"),
               tuple(_file(f) for f in files), tuple(parsed_inputs), jobs, repository)


def result_from_json(data: Any) -> JobResult:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad("not a guestpkg result of format 1")
    job_id, host = _get(data, "job", str), _get(data, "host", str)
    if not _JOB_ID.match(job_id) or not _HOST.match(host):
        raise _bad("job id or host name")
    public_key, signature = _get(data, "public_key", str), _get(data, "signature", str)
    if not _B64.match(public_key) or not _B64.match(signature):
        raise _bad("public key or signature is not base64")
    size, expires = _get(data, "size", int), _get(data, "expires", int)
    seconds: Any = data.get("seconds")
    if size < 0 or expires < 0 or not _time(seconds):
        raise _bad("size, expiry or time")
    phases = data.get("phases", [0.0, 0.0, 0.0])
    if not isinstance(phases, list) or len(phases) != 3 or not all(map(_time, phases)):
        raise _bad("phases")
    fetch, build, send = (float(p) for p in phases)
    return JobResult(job_id, host, _sha(data.get("sha256"), "result"), size, public_key,
                     signature, expires, _sha(data.get("log_sha256"), "log"), float(seconds),
                     (fetch, build, send))


def _time(value: Any) -> bool:
    """A number of seconds a job can take (a week at most): no bool, NaN or infinity."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value <= 7 * 86400)
