# SPDX-License-Identifier: GPL-2.0-or-later
"""debian/watch files, versions 1 to 5, parsed into :class:`WatchEntry` values.

A watch file tells uscan(1) where a package's upstream releases are published.  The
line format (versions 1 to 4, described in uscan(1) "WATCH FILE") is::

    version=4
    opts="uversionmangle=s/-rc/~rc/,filenamemangle=s%.*/v?(.*)%foo-$1.tar.gz%" \\
      https://example.org/releases/ foo-@ANY_VERSION@@ARCHIVE_EXT@ debian uupdate

one entry per logical line (a trailing backslash continues it): optional ``opts=``,
the base URL (a path component may itself be a regex with a group: directory-version
scanning), the Perl regex of the file names with one or more capturing groups (the
version), the version policy (``debian``, a literal version, ``same``, ``previous``,
``ignore``, ``group``, ``checksum``) and an update script that we never run.  If the
last path component of the URL has a group, it is the file pattern (the 3-field form).
``@PACKAGE@``, ``@ANY_VERSION@``, ``@ARCHIVE_EXT@``, ``@SIGNATURE_EXT@`` and
``@DEB_EXT@`` are substituted first, with uscan's own regexes.

Version 5 (debian-watch(5), newer devscripts than bookworm's) is deb822: a first
paragraph ``Version: 5`` whose other fields are defaults, then one paragraph per
source with ``Source:`` (the URL), ``Matching-Pattern:`` and the options as fields
(``Uversion-Mangle:``, ``Search-Mode:``...; names are case-insensitive and hyphens are
ignored).  ``Template:`` expands the Github, Gitlab, Metacpan and Npmregistry
templates of uscan-templates(5) into plain fields.

Options that a pinned SHA256 makes moot (``pgp*``, ``repack*``, ``compression``,
``decompress``) are accepted and listed in :attr:`WatchEntry.ignored`; options that
need a VCS (``mode=git``, ``mode=svn``) are listed in :attr:`WatchEntry.unsupported`.  Mangling
rules are compiled by :mod:`guestpkg.debian.perlre`, which refuses code.  Errors are
:class:`~guestpkg.errors.ParseError` with ``file:line``.  Pure: no network, no process.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from guestpkg.debian import deb822
from guestpkg.debian.perlre import PerlSyntaxError, Rule, compile_regex, parse_rule
from guestpkg.errors import ParseError

__all__ = ["ANY_VERSION", "ARCHIVE_EXT", "WatchEntry", "WatchFile", "parse_watch",
           "read_watch"]

# The macros, exactly as bookworm's uscan (Devscripts::Uscan::WatchFile) defines them.
ANY_VERSION = r"(?:[-_]?v?(\d[\-+\.:\~\da-zA-Z]*))"
ARCHIVE_EXT = r"(?i)(?:\.(?:tar\.xz|tar\.bz2|tar\.gz|tar\.zstd?|zip|tgz|tbz|txz))"
SIGNATURE_EXT = ARCHIVE_EXT + r"(?:\.(?:asc|pgp|gpg|sig|sign))"
DEB_EXT = r"(?:[\+~](debian|dfsg|ds|deb)(\.)?(\d+)?$)"
# debian-watch(5) for version 5 files: 'V' is accepted too, plus two stricter macros.
ANY_VERSION_5 = r"[-_]?[Vv]?(\d[\-+\.:\~\da-zA-Z]*)"
SEMANTIC_VERSION = (r"[-_]?[Vv]?((?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
                    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)")
STABLE_VERSION = r"[-_]?[Vv]?((?:0|[1-9]\d*)(?:\.(?:0|[1-9]\d*))*)"

MANGLES = ("uversionmangle", "dversionmangle", "dirversionmangle", "filenamemangle",
           "downloadurlmangle", "pagemangle", "oversionmangle")
VALUED = ("component", "ctype", "searchmode", "hrefdecode", "mode", "useragent")
#: Moot when the tarball's SHA256 is pinned: accepted, reported, not acted on.
IGNORED = ("pgpmode", "pgpsigurlmangle", "repack", "repacksuffix", "compression",
           "decompress", "pasv", "passive", "active", "nopasv", "nopassive", "bare")
#: Accepted by uscan but meaningless for an http(s) fetch with a pinned hash.
UNSUPPORTED = ("gitexport", "gitmode", "pretty", "date", "unzipopt")


class VersionPolicy(enum.StrEnum):
    """The version field of a watch line (uscan(1), "WATCH FILE"): which upstream
    version the entry must yield."""

    DEBIAN = "debian"          # the upstream part of debian/changelog's version
    SAME = "same"              # the version the main tarball's entry found
    PREVIOUS = "previous"      # the previous entry's version: a signature, moot here
    IGNORE = "ignore"          # the newest
    GROUP = "group"            # this entry's part of a "+~"-joined version
    CHECKSUM = "checksum"      # the newest (uscan adds a checksum to the version)
    LITERAL = "literal"        # WatchEntry.literal_version


class SearchMode(enum.StrEnum):
    """How links are found in a page (``searchmode=``)."""

    HTML = "html"              # the href of <a> and friends
    PLAIN = "plain"            # the pattern anywhere in the text (JSON APIs)


class Ctype(enum.StrEnum):
    """Where a component reads its own version (``ctype=``, uscan's Ctype modules)."""

    NODEJS = "nodejs"          # package.json
    PERL = "perl"              # META.json



@dataclass(frozen=True)
class WatchEntry:
    """One watch line (v1-4) or source paragraph (v5), substitutions done."""

    path: str
    line: int
    watch_version: int
    url: str                    # base URL; a path component may be a regex
    pattern: str                # Perl regex of the file hrefs
    policy: VersionPolicy
    literal_version: str | None = None
    action: str = ""
    mangles: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    component: str | None = None
    ctype: Ctype | None = None
    searchmode: SearchMode = SearchMode.HTML
    hrefdecode: str | None = None
    mode: str = "http"
    user_agent: str | None = None
    ignored: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def rules(self, name: str) -> tuple[Rule, ...]:
        return self.mangles.get(name, ())

    @property
    def versionless(self) -> bool:
        """No group in the pattern: the version comes from filenamemangle (uscan)."""
        return not re.search(r"\([^?].*\)", self.pattern)


@dataclass(frozen=True)
class WatchFile:
    path: str
    version: int
    entries: tuple[WatchEntry, ...]
    untrackable: str | None = None  # v5 "Untrackable: <reason>"


def read_watch(path: Path, package: str, *, strict: bool = True) -> WatchFile:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ParseError(f"cannot read the watch file: {e.strerror}", path,
                         hint="a host package needs the guest's debian/watch") from e
    return parse_watch(text, str(path), package, strict=strict)


def parse_watch(text: str, path: str, package: str, *, strict: bool = True) -> WatchFile:
    """Parse the watch file *text*; *path* names it in errors.  With ``strict`` an
    unknown option is an error; otherwise it is listed in ``unsupported``."""
    first = _first_content_line(text)
    if first is not None and re.match(r"(?i)version\s*:\s*5\s*$", first):
        return _parse_v5(text, path, package, strict)
    return _parse_lines(text, path, package, strict)


def _first_content_line(text: str) -> str | None:
    for raw in text.splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            return raw.strip()
    return None


# -- versions 1 to 4 ----------------------------------------------------------------------

def _logical_lines(text: str, path: str) -> Iterator[tuple[int, str, int]]:
    """(first line number, joined text, the version it declares or 0) as uscan
    reassembles them: comments and blank lines are skipped only at the start of a
    logical line, and continuations lose their indentation from version 4 on."""
    lines = text.splitlines()
    index, version = 0, 0
    while index < len(lines):
        number, current = index + 1, lines[index]
        index += 1
        if re.match(r"\s*(#|$)", current):
            continue
        current = current.lstrip()
        while re.search(r"(?<!\\)\\$", current):
            if index >= len(lines):
                raise ParseError("the file ends with a continuation backslash", path, number)
            nxt = lines[index]
            index += 1
            current = current[:-1] + (nxt.lstrip() if version > 3 else nxt)
        match = re.match(r"version\s*=\s*(\d+)(\s|$)", current)
        if version == 0 and match:
            version = int(match.group(1))
            if not 2 <= version <= 4:
                raise ParseError(f"unknown watch file version {version}", path, number,
                                 hint="versions 1 to 4 (line format) and 5 (deb822) exist")
            yield number, current, version
            continue
        version = version or 1
        yield number, current, 0


def _parse_lines(text: str, path: str, package: str, strict: bool) -> WatchFile:
    version = 1
    entries: list[WatchEntry] = []
    for number, line, declared in _logical_lines(text, path):
        if declared:
            version = declared
            continue
        if version == 1:
            line = line.replace("\\\\", "\\")
        line = _substitute(line, package, version)
        entries.append(_parse_line(line, path, number, version, strict))
    return WatchFile(path, version, tuple(entries))


def _substitute(text: str, package: str, version: int, component: str = "") -> str:
    any_version = ANY_VERSION_5 if version >= 5 else ANY_VERSION
    macros = {"PACKAGE": package, "ANY_VERSION": any_version, "ARCHIVE_EXT": ARCHIVE_EXT,
              "SIGNATURE_EXT": SIGNATURE_EXT, "DEB_EXT": DEB_EXT}
    if version >= 5:
        macros.update(COMPONENT=component, SEMANTIC_VERSION=SEMANTIC_VERSION,
                      STABLE_VERSION=STABLE_VERSION)
    for name, value in macros.items():
        text = text.replace(f"@{name}@", value)
    return text


def _split_opts(line: str, path: str, number: int) -> tuple[str | None, str]:
    """(the opts string or None, the rest of the line), with uscan's quoting rules."""
    head = re.match(r"opt(?:ion)?s\s*=\s*", line)
    if not head:
        return None, line
    rest = line[head.end():]
    quoted = re.match(r'"(.*?)"(?:\s+|$)', rest)
    bare = re.match(r'([^"\s]\S*)(?:\s+|$)', rest)
    found = quoted or bare
    if not found:
        raise ParseError("malformed opts=...: an unterminated quote?", path, number)
    return found.group(1), rest[found.end():]


def _parse_options(opts: str, path: str, number: int,
                   strict: bool) -> dict[str, str | list[str]]:
    """The options as uscan reads them: split on ',' and mangling rules on ';'."""
    agent = re.match(r"\s*user-?agent\s*=\s*(.+?)\s*$", opts)
    if agent:  # a user agent string may hold commas: uscan takes the whole string
        return {"useragent": agent.group(1)}
    options: dict[str, str | list[str]] = {}
    for item in opts.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip().lower(), value.strip()
        _add_option(options, name, value if sep else "", path, number, strict)
    return options


def _add_option(options: dict[str, str | list[str]], name: str, value: str, path: str,
                number: int, strict: bool) -> None:
    name = name.replace("-", "").replace("_", "")
    if name == "versionmangle":
        options["uversionmangle"] = options["dversionmangle"] = value.split(";")
    elif name in MANGLES or name == "pgpsigurlmangle":
        options[name] = value.split(";")
    elif name in VALUED or name in IGNORED or name in UNSUPPORTED:
        options[name] = value
    elif strict:
        raise ParseError(f"unknown watch option {name!r}", path, number,
                         hint="see uscan(1), WATCH FILE OPTIONS")
    else:
        unknown = options.setdefault("unknown", [])
        assert isinstance(unknown, list)
        unknown.append(name)


def _parse_line(line: str, path: str, number: int, version: int, strict: bool) -> WatchEntry:
    opts, rest = _split_opts(line, path, number) if version > 1 else (None, line)
    options = _parse_options(opts, path, number, strict) if opts is not None else {}
    if not rest.strip():
        raise ParseError("a watch line with opts=... but no URL", path, number)
    if version == 1:
        return _parse_v1(rest, path, number, options)
    fields = rest.split(None, 3)
    url, pattern = fields[0], fields[1] if len(fields) > 1 else ""
    tail = fields[2:]
    three = re.search(r"/([^/]*\([^/]*\)[^/]*)$", url)
    if three:  # the last path component carries the group: it is the pattern
        pattern, url = three.group(1), url[:three.start()] + "/"
        tail = rest.split(None, 2)[1:]
    policy = tail[0] if tail else ""
    action = tail[1] if len(tail) > 1 else ""
    return _entry(path, number, version, url, pattern, policy, action, options)


def _parse_v1(rest: str, path: str, number: int,
              options: dict[str, str | list[str]]) -> WatchEntry:
    fields = rest.split(None, 4)
    if len(fields) < 4 or re.search(r"\(.*\)", fields[0] + fields[1]):
        raise ParseError("a version 2 line in a version 1 watch file: add 'version=4'?",
                         path, number)
    site, directory, pattern = fields[0], fields[1], fields[2]
    if "://" not in site:
        site = "ftp://" + site
        if not re.search(r"\(.*\)", pattern):  # shell wildcards, uscan's "old style"
            pattern = re.sub(r"(\?|\*)", r"(\1", pattern, count=1)
            pattern = re.sub(r"(\?|\*)([^?*]*)$", r"\1)\2", pattern)
            pattern = pattern.replace(".", r"\.").replace("?", ".").replace("*", ".*")
    url = re.sub(r"(?<!:)//", "/", f"{site}/{directory}/")
    return _entry(path, number, 1, url, pattern, fields[3],
                  fields[4] if len(fields) > 4 else "", options)


def _entry(path: str, number: int, version: int, url: str, pattern: str, policy: str,
           action: str, options: dict[str, str | list[str]]) -> WatchEntry:
    literal = None
    if not policy:
        chosen = VersionPolicy.DEBIAN
    elif policy.startswith("prev"):
        chosen = VersionPolicy.PREVIOUS
    elif policy in iter(VersionPolicy) and policy != VersionPolicy.LITERAL:
        chosen = VersionPolicy(policy)
    else:
        literal, chosen = policy, VersionPolicy.LITERAL
    mode = str(options.get("mode", "") or "")
    if not mode or mode == "LWP":
        mode = "ftp" if url.startswith("ftp://") else "http"
    entry = WatchEntry(
        path=path, line=number, watch_version=version, url=url, pattern=pattern,
        policy=chosen, literal_version=literal, action=action,
        mangles=_compile_mangles(options, path, number),
        component=_text(options, "component"),
        ctype=_choice(Ctype, _text(options, "ctype"), "ctype", path, number),
        searchmode=_choice(SearchMode, _text(options, "searchmode"), "searchmode",
                           path, number) or SearchMode.HTML,
        hrefdecode=_text(options, "hrefdecode"), mode=mode,
        user_agent=_text(options, "useragent"),
        ignored=tuple(n for n in options if n in IGNORED),
        unsupported=_unsupported(options, mode),
    )
    _check(entry, path, number)
    return entry


_Choice = TypeVar("_Choice", bound=enum.StrEnum)


def _choice(kind: type[_Choice], value: str | None, what: str, path: str,
            number: int) -> _Choice | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ParseError(f"unknown {what} {value!r}", path, number,
                         hint=f"{what} is " + " or ".join(kind)) from None


def _text(options: dict[str, str | list[str]], name: str) -> str | None:
    value = options.get(name)
    return value if isinstance(value, str) and value else None


def _unsupported(options: dict[str, str | list[str]], mode: str) -> tuple[str, ...]:
    names = [n for n in options if n in UNSUPPORTED]
    names += list(options.get("unknown", []))
    if mode not in ("http", "ftp"):  # git and svn need a VCS, not a download
        names.append(f"mode={mode}")
    return tuple(names)


def _compile_mangles(options: dict[str, str | list[str]], path: str,
                     number: int) -> dict[str, tuple[Rule, ...]]:
    compiled: dict[str, tuple[Rule, ...]] = {}
    for name in MANGLES:
        raw = options.get(name)
        if not isinstance(raw, list):
            continue
        rules = []
        for text in raw:
            if name == "dversionmangle" and text.strip() == "auto":
                text = f"s/{DEB_EXT}//"
            try:
                rules.append(parse_rule(text))
            except PerlSyntaxError as e:
                raise ParseError(f"{name}: {e}", path, number) from e
        compiled[name] = tuple(rules)
    return compiled


def _check(entry: WatchEntry, path: str, number: int) -> None:
    if not re.match(r"\w+://", entry.url):
        raise ParseError(f"not a URL: {entry.url!r}", path, number)
    if entry.versionless and not (entry.rules("filenamemangle") or entry.unsupported):
        raise ParseError("the file pattern has no (group) for the version", path, number,
                         hint="put the version part of the file name in parentheses")
    if entry.hrefdecode not in (None, "percent-encoding"):
        raise ParseError(f"unknown hrefdecode {entry.hrefdecode!r}", path, number)
    if entry.mode in ("http", "ftp"):
        try:
            compile_regex(entry.pattern)
            for part in entry.url.split("/"):
                if re.search(r"\(.*\)", part):
                    compile_regex(part)
        except PerlSyntaxError as e:
            raise ParseError(str(e), path, number) from e


# -- version 5 ----------------------------------------------------------------------------

V5_FIELDS = {"source": "url", "matchingpattern": "pattern", "versionschema": "policy",
             "updatescript": "action"}
TEMPLATE_FIELDS = ("template", "owner", "project", "dist", "releaseonly", "versiontype",
                   "customversion")


def _paragraphs(text: str, path: str) -> Iterator[tuple[int, dict[str, str]]]:
    """deb822 paragraphs as (first line, {normalised key: value}); '#' lines dropped.
    Each line of a multi-line value is stripped: indentation means nothing here."""
    for stanza in deb822.parse(text, path, deb822.WATCH):
        yield stanza.first_line, {
            key: "\n".join(part.strip() for part in value.split("\n"))
            for key, value in stanza.fields.items()}


def _parse_v5(text: str, path: str, package: str, strict: bool) -> WatchFile:
    paragraphs = list(_paragraphs(text, path))
    number, defaults = paragraphs[0]
    untrackable = defaults.pop("untrackable", None)
    del defaults["version"]
    sources = paragraphs[1:] or ([(number, {})] if "source" in defaults
                                 or "template" in defaults else [])
    entries = []
    for line, own in sources:
        fields = {**defaults, **own}
        untrackable = fields.pop("untrackable", untrackable)
        if "template" in fields:
            fields = _expand_template(fields, path, line)
        entries.append(_v5_entry(fields, path, line, package, strict))
    return WatchFile(path, 5, tuple(entries), untrackable)


def _v5_entry(fields: dict[str, str], path: str, line: int, package: str,
              strict: bool) -> WatchEntry:
    component = fields.get("component", "")
    values = {k: _substitute(v, package, 5, component) for k, v in fields.items()}
    if "source" not in values:
        raise ParseError("a watch paragraph without Source:", path, line)
    pattern = values.get("matchingpattern") or _substitute(
        "(?:@PACKAGE@)?@ANY_VERSION@@ARCHIVE_EXT@", package, 5)
    options: dict[str, str | list[str]] = {}
    for key, value in values.items():
        if key in V5_FIELDS or key in TEMPLATE_FIELDS:
            continue
        if key in MANGLES or key in ("versionmangle", "pgpsigurlmangle"):
            value = ";".join(v.strip() for v in value.splitlines() if v.strip())
        _add_option(options, key, value, path, line, strict)
    return _entry(path, line, 5, values["source"], pattern, values.get("versionschema", ""),
                  values.get("updatescript", ""), options)


def _expand_template(fields: dict[str, str], path: str, line: int) -> dict[str, str]:
    """The templates of uscan-templates(5), as plain version 5 fields."""
    name = fields.pop("template").lower()
    version = {"anyversion": "@ANY_VERSION@", "semanticversion": "@SEMANTIC_VERSION@",
               "stableversion": "@STABLE_VERSION@"}
    wanted = fields.pop("versiontype", "ANY_VERSION").lower().replace("_", "")
    macro = fields.pop("customversion", "") or version.get(wanted, "@ANY_VERSION@")
    release_only = fields.pop("releaseonly", "no").lower() in ("yes", "1", "true")
    dist = fields.pop("dist", "")
    if name == "github":
        owner, project = _github_names(fields, dist, path, line)
        api = f"https://api.github.com/repos/{owner}/{project}"
        expanded = {
            "source": f"{api}/releases?per_page=100" if release_only
            else f"{api}/tags?per_page=100",
            "matchingpattern": rf"{re.escape(api)}/tarball/(?:refs/tags/)?(?:[^/\"]*?){macro}",
            "searchmode": "plain",
            "filenamemangle": rf"s%.*/(?:[^/]*?){macro}%{project}-$1.tar.gz%",
        }
    elif name == "gitlab":
        if not dist:
            raise ParseError("the Gitlab template needs Dist: (the project URL)", path, line)
        expanded = _gitlab(dist.rstrip("/"), macro, release_only)
    elif name == "metacpan":
        dist = dist.replace("::", "-")
        expanded = {
            "source": "https://fastapi.metacpan.org/v1/release/_search?q=distribution:"
                      f"{dist}&fields=download_url&size=500",
            "matchingpattern": r"https://cpan\.metacpan\.org/authors/id/(?:[^/\"]+/)*"
                               f"{re.escape(dist)}{macro}@ARCHIVE_EXT@",
            "searchmode": "plain",
        }
    elif name == "npmregistry":
        base = dist.rsplit("/", 1)[-1]
        expanded = {
            "source": f"https://registry.npmjs.org/{dist}",
            "matchingpattern": f"https://registry.npmjs.org/{dist}/-/{base}-{macro}@ARCHIVE_EXT@",
            "searchmode": "plain",
        }
    else:
        raise ParseError(f"unknown template {name!r}", path, line,
                         hint="templates: Github, Gitlab, Metacpan, Npmregistry")
    for key in ("owner", "project"):
        fields.pop(key, None)
    return {**expanded, **fields}


def _github_names(fields: dict[str, str], dist: str, path: str,
                  line: int) -> tuple[str, str]:
    if dist:
        match = re.match(r"https?://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?$", dist)
        if not match:
            raise ParseError(f"not a GitHub project URL: {dist!r}", path, line)
        return match.group(1), match.group(2)
    if "owner" not in fields or "project" not in fields:
        raise ParseError("the Github template needs Owner: and Project: (or Dist:)",
                         path, line)
    return fields["owner"], fields["project"]


def _gitlab(dist: str, macro: str, release_only: bool) -> dict[str, str]:
    """GitLab's REST API lists tags as JSON; the archive URL is built from the tag."""
    match = re.match(r"(https?://[^/]+)/(.+)$", dist)
    host, project_path = (match.group(1), match.group(2)) if match else (dist, "")
    project = project_path.rsplit("/", 1)[-1]
    api = f"{host}/api/v4/projects/{project_path.replace('/', '%2F')}"
    key = "tag_name" if release_only else "name"
    return {
        "source": f"{api}/releases" if release_only else f"{api}/repository/tags",
        "matchingpattern": rf"\"{key}\"\s*:\s*\"[^\"]*?{macro}\"",
        "searchmode": "plain",
        "downloadurlmangle": rf"s%^.*\"{key}\"\s*:\s*\"([^\"]*)\".*$%{dist}/-/archive/$1/"
                             rf"{project}-$1.tar.gz%",
        "filenamemangle": rf"s%^.*\"{key}\"\s*:\s*\"(?:[^\"]*?){macro}\".*$%"
                          rf"{project}-$1.tar.gz%",
    }
