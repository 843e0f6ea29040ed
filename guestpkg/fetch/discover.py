# SPDX-License-Identifier: GPL-2.0-or-later
"""Find upstream releases the way uscan(1) does, for one watch entry.

This follows bookworm's uscan (Devscripts::Uscan::http, ::Utils, ::_xtp) step by step,
so both choose the same file:

1. the Debian version: the changelog's upstream version (or the literal of the watch
   line), mangled by ``dversionmangle``;
2. directory scanning: each URL path component holding a group is replaced by the
   newest matching directory of its parent's listing (``dirversionmangle``), or the one
   matching the wanted version;
3. the page is fetched (``pagemangle``), its links found (``searchmode=html``: ``<a
   href>`` after uscan's clean-up of bad HTML and ``<base href>``; ``plain``: every
   match of the pattern in the raw text), each matched against the pattern, anchored,
   optionally prefixed by the site and directory, also after redirects;
4. the version is the groups joined with ``.``, then ``uversionmangle``; candidates
   are sorted newest first (dpkg order, ``.tar.xz`` over ``.tar.bz2`` over ``.tar.gz``
   for the same version);
5. the download URL (``downloadurlmangle``) and file name (``filenamemangle``), and the
   orig tarball name ``<source>_<version>.orig[-<component>].tar.<ext>`` with the
   version through ``oversionmangle``.

Network access goes through a :class:`PageSource` (normally
:func:`guestpkg.fetch.transport.get_page`), so the logic is testable with any pages.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from guestpkg.debian.perlre import apply_rules, compile_regex
from guestpkg.debian.watch import SearchMode, VersionPolicy, WatchEntry
from guestpkg.errors import InputError, NetworkError
from guestpkg.fetch import versort
from guestpkg.fetch.transport import Page

#: ``(url, user_agent) -> Page``
PageSource = Callable[[str, "str | None"], Page]

ARCHIVE_SUFFIXES = {
    ".tar.gz": "tar.gz", ".tgz": "tar.gz", ".tar.bz2": "tar.bz2", ".tbz": "tar.bz2",
    ".tbz2": "tar.bz2", ".tar.xz": "tar.xz", ".txz": "tar.xz", ".tar.lzma": "tar.lzma",
    ".tar.zst": "tar.zst", ".tar.zstd": "tar.zst",
}


@dataclass(frozen=True)
class Candidate:
    version: str        # after uversionmangle (or dirversionmangle)
    href: str           # as matched (absolute in html mode)
    priority: int       # .tar.xz 4 > .tar.lzma 3 > .tar.bz2 2 > .tar.gz 1 > other 0


@dataclass(frozen=True)
class Found:
    """What one watch entry resolved to."""

    entry: WatchEntry
    debian_version: str          # the packaged upstream version (lastversion)
    mangled_debian_version: str  # after dversionmangle
    version: str                 # the upstream version found (uversionmangled)
    url: str                     # the download URL
    filename: str                # uscan's newfile_base (after filenamemangle)
    candidates: tuple[Candidate, ...]

    @property
    def status(self) -> str:
        """uscan --report's words for how the upstream version relates to ours."""
        if self.entry.policy is VersionPolicy.IGNORE:
            return "package available"
        order = versort.compare_upstream(self.mangled_debian_version, self.version)
        return ("up to date" if order == 0 else
                "only older package available" if order > 0 else "newer package available")


def quotemeta(text: str) -> str:
    """Perl's quotemeta: a backslash before every non-word character."""
    return re.sub(r"(\W)", r"\\\1", text)


def archive_suffix(filename: str) -> str:
    """``tar.gz`` etc. of *filename*; InputError if it is no tarball dpkg-source takes."""
    lower = filename.lower()
    for suffix, canonical in ARCHIVE_SUFFIXES.items():
        if lower.endswith(suffix):
            return canonical
    raise InputError(f"{filename}: not a tar archive that dpkg-source accepts",
                     hint="uscan would repack it (a zip or plain file); guestpkg needs "
                     "the upstream tarball as published")


#: What dpkg-source takes in an orig tarball's name (deb-src-control(5), Policy 5.6.12:
#: an upstream version is alphanumerics and ``.+~-``; a component, alphanumerics and
#: hyphens).  The version may be what an upstream's link said (``version=ignore``,
#: or a report): checked before it becomes part of a path.
ORIG_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+~-]*")
ORIG_COMPONENT = re.compile(r"[A-Za-z0-9-]+")


def orig_name(source: str, version: str, filename: str, component: str | None) -> str:
    if not ORIG_VERSION.fullmatch(version):
        raise InputError(f"{version!r}: not an upstream version dpkg-source takes in a "
                         "file name", hint="check the watch file's uversionmangle and "
                         "oversionmangle; the upstream's links decide this version")
    if component is not None and not ORIG_COMPONENT.fullmatch(component):
        raise InputError(f"component={component!r}: only letters, digits and hyphens",
                         hint="see uscan(1), COMPONENTS")
    part = f"-{component}" if component else ""
    return f"{source}_{version}.orig{part}.{archive_suffix(filename)}"


def priority(href: str) -> int:
    lower = href.lower()
    for needle, value in ((".tar.xz", 4), (".tar.lzma", 3), (".tar.bz2", 2), (".tar.gz", 1)):
        if needle in lower:
            return value
    return 0


def partial_versions(version: str | None) -> list[str]:
    """uscan's partial_version: ``1.2.3.4`` -> ``1``, ``1.2``, ``1.2.3``."""
    if version is None:
        return []
    match = re.fullmatch(r"([-~+\w]+)(\.[-~+\w]+)?(\.[-~+\w]+)?(\.[-~+\w]+)?", version)
    if not match:
        return []
    parts = [match.group(1)]
    if match.group(2):
        parts.append(parts[-1] + match.group(2))
    if match.group(3):
        parts.append(parts[-1] + match.group(3))
    return parts


class Search:
    """The discovery of one watch entry; *pages* fetches, everything else is pure."""

    def __init__(self, entry: WatchEntry, pages: PageSource) -> None:
        self.entry = entry
        self.pages = pages

    # -- the steps --------------------------------------------------------------------

    def find(self, debian_version: str, want: str | None) -> Found:
        """The newest candidate, or the one whose version is *want* if given."""
        entry = self.entry
        mangled = apply_rules(entry.rules("dversionmangle"), debian_version)
        base = self.scan_directories(entry.url, want)
        page = self.pages(base, entry.user_agent)
        sites, basedirs, patterns = self._patterns(base, page)
        urlbase, candidates = self.search(page, patterns)
        ordered = versort.newest_first(candidates, lambda c: f"{c.version}-{c.priority}")
        if not ordered:
            raise NetworkError(f"{entry.where}: no file on {base} matches {entry.pattern}",
                               hint="the upstream page may have changed; check debian/watch")
        chosen = ordered[0]
        if want is not None:
            matching = [c for c in ordered if c.version == want]
            if not matching:
                found = ", ".join(dict.fromkeys(c.version for c in ordered[:10]))
                raise NetworkError(f"{entry.where}: version {want} not found on {base} "
                                   f"(found: {found})",
                                   hint="upstream may have removed the release")
            chosen = matching[0]
        url = (base + chosen.href if entry.mode == "ftp" else  # uscan's ftp_upstream_url
               self.upstream_url(chosen.href, sites, basedirs, patterns, urlbase))
        version, filename = self.newfile_base(chosen, url)
        return Found(entry, debian_version, mangled, version, url, filename, tuple(ordered))

    def scan_directories(self, url: str, want: str | None) -> str:
        """Replace each path component with a (group) by the newest matching directory."""
        match = re.match(r"(\w+://[^/]+)/(.*)$", url)
        if not match:
            return url
        site, path = match.group(1), match.group(2)
        directory = "/"
        for part in re.split(r"(/)", path):
            if re.search(r"\(.*\)", part):
                directory += self._newest_dir(site, directory, part, want)
            else:
                directory += part
        return site + directory

    def _newest_dir(self, site: str, directory: str, pattern: str, want: str | None) -> str:
        base = site + directory
        page = self.pages(base, self.entry.user_agent)
        if self.entry.mode == "ftp":
            found = self._ftp_listing(page.text, pattern, pattern, "dirversionmangle",
                                      skip=r"^-.*$")
        else:
            bases = [*page.redirects, base]
            patterns = [p for _, _, p in _redirection_patterns(bases, pattern + "/?")]
            _, found = self._html_search(page.text, base, patterns, "dirversionmangle")
        if not found:
            raise NetworkError(f"{self.entry.where}: no directory on {base} matches {pattern}")
        partial = partial_versions(want)
        wanted = [c for c in found if want is not None and (c.version == want
                                                           or c.version in partial)]
        ordered = versort.newest_first(wanted or found, lambda c: c.version, upstream=True)
        return ordered[0].href.rstrip("/").rsplit("/", 1)[-1]

    def _patterns(self, base: str, page: Page) -> tuple[list[str], list[str], list[str]]:
        """uscan's parallel lists of sites, base directories and patterns: the watch
        URL's first, then one or two per redirect."""
        site_match = re.match(r"(\w+://[^/]+)", base)
        site = site_match.group(1) if site_match else ""
        basedir = re.sub(r"^\w+://[^/]+/", "/", base)
        basedir = re.sub(r"/[^/]*(?:[#?].*)?$", "/", basedir)
        sites, basedirs = [site], [basedir]
        patterns = [f"(?:(?:{site})?{quotemeta(basedir)})?{self.entry.pattern}"]
        for s, d, p in _redirection_patterns(list(page.redirects), self.entry.pattern):
            sites.append(s)
            basedirs.append(d)
            patterns.append(p)
        return sites, basedirs, patterns

    def search(self, page: Page, patterns: list[str]) -> tuple[str, list[Candidate]]:
        if self.entry.mode == "ftp":
            return page.url, self._ftp_listing(page.text, patterns[0], self.entry.pattern,
                                               "uversionmangle", skip=r"^d.*$")
        if self.entry.searchmode is SearchMode.PLAIN:
            return page.url, self._plain_search(page.text, patterns)
        return self._html_search(page.text, page.url, patterns, "uversionmangle")

    def _html_search(self, content: str, base: str, patterns: list[str],
                     mangle: str) -> tuple[str, list[Candidate]]:
        content = apply_rules(self.entry.rules("pagemangle"), content)
        content = _clean_content(content)
        base_tag = re.search(r"<\s*base\s+[^>]*href\s*=\s*([\"'])(.*?)\1", content, re.I)
        urlbase = canonicalize_dots(base, base_tag.group(2)) if base_tag else base
        compiled = [compile_regex(p) for p in patterns]
        found: list[Candidate] = []
        for link in re.finditer(r"<\s*a\s+[^>]*(?<=\s)href\s*=\s*([\"'])(.*?)\1", content,
                                re.S | re.I):
            href = link.group(2).replace("\n", "").strip()
            canonical = canonicalize_dots(urlbase, href)
            if self.entry.hrefdecode == "percent-encoding":
                href, canonical = _percent_decode(href), _percent_decode(canonical)
            for regex in compiled:
                for candidate_text in (href, canonical):
                    match = regex.fullmatch(candidate_text)
                    if match:
                        found.append(self._candidate(canonical, match, mangle))
        return urlbase, found

    def _ftp_listing(self, content: str, html_pattern: str, pattern: str, mangle: str,
                     skip: str) -> list[Candidate]:
        """uscan's ftp_search and ftp_newdir: an HTML listing (from a proxy) or ``LIST``
        lines, whose last word is the name; *skip* drops directories or files."""
        anchored = compile_regex(pattern)
        names: list[str] = []
        if re.search(r"<\s*a\s+[^>]*href", content, re.I):
            links = compile_regex(rf'(?:<\s*a\s+[^>]*href\s*=\s*\")((?-i){html_pattern})\"',
                                  re.I)
            names = [m.group(1).replace("\n", "").strip() for m in links.finditer(content)]
            anchored = compile_regex(html_pattern)
        else:
            for line in content.split("\n"):
                line = re.sub(skip, "", line)
                line = re.sub(r"\s+->\s+\S+$", "", line)
                line = re.sub(r"^.*\s(\S+)$", r"\1", line)
                if line and anchored.fullmatch(line):
                    names.append(line)
        found = []
        for name in names:
            match = anchored.fullmatch(name)
            version = ".".join(g or "" for g in match.groups()) if match else ""
            found.append(Candidate(apply_rules(self.entry.rules(mangle), version), name,
                                   priority(name)))
        return found

    def _plain_search(self, content: str, patterns: list[str]) -> list[Candidate]:
        found: list[Candidate] = []
        for pattern in patterns:
            regex = compile_regex(pattern)
            for match in regex.finditer(content):
                if match.group(0):
                    anchored = regex.fullmatch(match.group(0)) or match
                    found.append(self._candidate(match.group(0), anchored, "uversionmangle"))
        return found

    def _candidate(self, href: str, match: re.Match[str], mangle: str) -> Candidate:
        groups = match.groups()
        if self.entry.watch_version == 2:
            version = groups[0] if groups else ""
        else:
            version = "" if self.entry.versionless else ".".join(g or "" for g in groups)
            version = apply_rules(self.entry.rules(mangle), version)
        return Candidate(version, href, priority(href))

    def upstream_url(self, newfile: str, sites: Sequence[str], basedirs: Sequence[str],
                     patterns: Sequence[str], urlbase: str) -> str:
        """uscan's http_upstream_url: absolute, protocol-relative or relative hrefs."""
        url = None
        if re.match(r"\w+://", newfile):
            url = newfile
        elif newfile.startswith("//"):
            url = re.sub(r"^(https?:).*", r"\1", sites[0]) + newfile
        elif newfile.startswith("/") or len(patterns) > 1:
            for site, basedir, pattern in zip(sites, basedirs, patterns, strict=True):
                path = newfile if newfile.startswith("/") else basedir + newfile
                if not newfile.startswith("/") and not basedir.endswith("/"):
                    continue
                if compile_regex(pattern).fullmatch(site + path):
                    url = site + path
                    break
            if url is None:
                url = sites[0] + newfile if newfile.startswith("/") else urlbase + newfile
        else:
            url = urlbase + newfile
        url = url.replace("&amp;", "&")
        return apply_rules(self.entry.rules("downloadurlmangle"), url)

    def newfile_base(self, chosen: Candidate, url: str) -> tuple[str, str]:
        """(version, file name) as uscan's _xtp_newfile_base computes them."""
        version = chosen.version
        rules = self.entry.rules("filenamemangle")
        if not rules:
            name = re.sub(r"[?#].*$", "", posixpath.basename(chosen.href))
            if not name:
                raise InputError(f"{self.entry.where}: no file name in {chosen.href}",
                                 hint="add a filenamemangle option")
            return version, name
        original = url if self.entry.versionless else chosen.href
        name = apply_rules(rules, original)
        if re.match(r"(?:https?|ftp):", name):
            name = posixpath.basename(name)
        if name == original:
            raise InputError(f"{self.entry.where}: filenamemangle did not change {original}")
        if not version:
            match = re.match(r"^.+?[-_]?(\d[\-+\.:\~\da-zA-Z]*)(?:\.tar\.(gz|bz2|xz|zstd?)|"
                             r"\.zip)$", name, re.I)
            if not match:
                raise InputError(f"{self.entry.where}: no version in the file name {name}",
                                 hint="fix filenamemangle to give a name with the version")
            version = match.group(1)
        return version, name


def _redirection_patterns(bases: Sequence[str], pattern: str) -> list[tuple[str, str, str]]:
    """uscan's handle_redirection: (site, directory, pattern) for each base URL, and
    again without a trailing file name."""
    out = []
    for base in bases:
        directory = re.sub(r"^\w+://[^/]+/", "/", base)
        directory = re.sub(r"/[^/]*(?:[#?].*)?$", "/", directory)
        site_match = re.match(r"(\w+://[^/]+)", base)
        if not site_match:
            continue
        site = site_match.group(1)
        out.append((site, directory, quotemeta(site) + quotemeta(directory) + pattern))
        shorter = re.sub(r"/[^/]*$", "/", directory)
        if shorter != directory:
            out.append((site, shorter, quotemeta(site) + quotemeta(shorter) + pattern))
    return out


def _clean_content(content: str) -> str:
    """uscan's clean_content: quote bare href values (Debian bug #89749), drop comments."""
    content = re.sub(r"href\s*=\s*(?=[^\"'])([^\s>]+)", r'href="\1"', content, flags=re.I)
    return re.sub(r"<!-- .*?-->", "", content, flags=re.S)


def _percent_decode(text: str) -> str:
    return re.sub(r"%([A-Fa-f\d]{2})", lambda m: chr(int(m.group(1), 16)), text)


def canonicalize_dots(base: str, url: str) -> str:
    """uscan's url_canonicalize_dots: resolve *url* against *base*, fold . and .."""
    if not re.match(r"[^:#?/]+://", url):
        if url.startswith("//"):
            scheme = re.match(r"[^:#?/]+:", base)
            url = (scheme.group(0) if scheme else "") + url
        elif url.startswith("/"):
            origin = re.match(r"[^:#?/]+://[^/#?]*", base)
            url = (origin.group(0) if origin else "") + url
        else:
            prefix = re.match(r"[^:#?/]+://[^/#?]*(?:/(?:[^#?/]*/)*)?", base)
            if prefix:
                directory = prefix.group(0)
                url = (directory if directory.endswith("/") else directory + "/") + url
    parts = re.match(r"([^:#?/]+://[^/#?]*)(/[^#?]*)", url)
    if not parts:
        return url
    host, path = parts.group(1), parts.group(2)
    path = re.sub(r"/\.(?:/|$|(?=[#?]))", "/", path)
    while True:
        folded = re.sub(r"/(?!\.\./)[^/]*/\.\.(?:/|(?=[#?])|$)", "/", path, count=1)
        if folded == path:
            break
        path = folded
    return host + path + url[parts.end():]
