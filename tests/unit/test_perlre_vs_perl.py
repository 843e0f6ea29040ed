# SPDX-License-Identifier: GPL-2.0-or-later
"""Every mangling rule of the watch corpus, applied by our translation and by perl
itself to the same strings, must give the same result.

Only rules our parser accepted reach perl, so none has the e flag, (?{...}) or
interpolated code; rules that interpolate a variable are left out because uscan keeps
``$name`` literal where a Perl eval would not.  perl gets the rules on stdin and never
sees the network."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from guestpkg.debian.perlre import Rule, parse_rule
from guestpkg.debian.watch import read_watch

CORPUS = Path(__file__).resolve().parents[1] / "data" / "watch"
SAMPLES = [
    "1.2.3", "1.2.3+dfsg", "1.2.3+ds1", "2.0~rc1", "2.0rc1", "2.0-rc1", "2.0.beta2",
    "v1.2", "1_2_3", "1.0+really0.9", "1.2.3+dfsg.1", "20230101", "0.9.1alpha",
    "https://example.org/releases/foo-1.2.3.tar.gz",
    "https://github.com/o/foo/archive/refs/tags/v1.2.3.tar.gz",
    "https://github.com/o/foo/releases/download/v1.2.3/foo-1.2.3.tar.xz",
    "https://files.pythonhosted.org/packages/ab/cd/foo-1.2.3.tar.gz#sha256=00",
    "/foo/bar/foo_1.2.3.orig.tar.gz",
    '<a href="foo-1.2.3.tar.gz">foo 1.2.3</a> <a href="../v2.0/">next</a>',
]
PERL = r"""
use strict; use warnings; no warnings 'uninitialized'; use JSON::PP;
local $/; my $cases = decode_json(<STDIN>); my @out;
for my $case (@$cases) {
    my ($rule, $s) = @$case;
    no re 'eval';
    my $ok = eval "\$s =~ $rule; 1";
    push @out, $ok ? $s : undef;
}
print JSON::PP->new->canonical->encode(\@out);
"""
INTERPOLATES = re.compile(r"[$@][A-Za-z_{]")


def corpus_rules() -> list[Rule]:
    rules: dict[str, Rule] = {}
    for path in sorted(CORPUS.glob("*.watch")):
        for entry in read_watch(path, path.stem).entries:
            for group in entry.mangles.values():
                for rule in group:
                    rules.setdefault(rule.text, rule)
    return list(rules.values())


def test_corpus_rules_match_perl() -> None:
    perl = shutil.which("perl")
    if perl is None:
        pytest.fail("perl is not installed")
    rules = [r for r in corpus_rules()
             if not INTERPOLATES.search(r.text.replace("$&", ""))]
    extra = [parse_rule(r) for r in (r"s/(\d)[_\.\-\+]?((RC|rc|pre|dev|beta|alpha)\d*)$/$1~$2/",
                                      r"s{a}{\U$&}g", r"tr/a-z/A-Z/", r"y/_/./",
                                      r"s/^v?(\d)/\u$1/", r"tr/0-9//cd")]
    rules += extra
    assert len(rules) >= 40
    cases = [(rule.text, sample) for rule in rules for sample in SAMPLES]
    result = subprocess.run([perl, "-e", PERL], input=json.dumps(cases), text=True,
                            capture_output=True, check=True, timeout=120)
    expected = json.loads(result.stdout)
    mismatches = []
    for (text, sample), want in zip(cases, expected, strict=True):
        rule = next(r for r in rules if r.text == text)
        got = rule.apply(sample)
        if got != want:
            mismatches.append(f"{text!r} on {sample!r}: perl {want!r}, ours {got!r}")
    print(f"\n{len(rules)} rules x {len(SAMPLES)} strings agree with perl: "
          f"{len(cases) - len(mismatches)}/{len(cases)}")
    assert mismatches == []


HREFS = [
    "foo-1.2.3.tar.gz", "/downloads/foo-1.2.3.tar.xz", "v1.2.3.tar.gz", "1.2.3.tar.gz",
    "https://github.com/o/p/archive/refs/tags/v1.2.3.tar.gz",
    "https://github.com/o/p/archive/v2.0.tar.gz", "/o/p/archive/refs/tags/1.0.tar.gz",
    "https://registry.npmjs.org/foo/-/foo-1.2.3.tgz", "release-1.2/", "1.2/", "v3/",
    "https://files.pythonhosted.org/packages/source/f/foo/foo-1.2.3.tar.gz",
    "foo_1.2.orig.tar.bz2", "foo-1.2.3.zip", "foo-1.2.3.tar.gz.asc", "FOO-1.2.TAR.GZ",
]
MATCH_PERL = r"""
use strict; use warnings; no warnings 'uninitialized'; use JSON::PP;
local $/; my $cases = decode_json(<STDIN>); my @out;
for my $case (@$cases) {
    my ($pattern, $href) = @$case;
    no re 'eval';
    my @groups = eval { $href =~ /^(?:$pattern)$/ ? (1, map { $_ } @{^CAPTURE}) : (0) };
    push @out, $@ ? undef : \@groups;
}
print JSON::PP->new->canonical->encode(\@out);
"""


def test_corpus_patterns_match_like_perl() -> None:
    perl = shutil.which("perl")
    if perl is None:
        pytest.fail("perl is not installed")
    from guestpkg.debian.perlre import compile_regex
    patterns: list[str] = []
    for path in sorted(CORPUS.glob("*.watch")):
        for entry in read_watch(path, path.stem).entries:
            parts = [p for p in entry.url.split("/") if "(" in p]
            for pattern in [entry.pattern, *parts]:
                if pattern not in patterns and entry.mode == "http":
                    patterns.append(pattern)
    cases = [(p, h) for p in patterns for h in HREFS]
    result = subprocess.run([perl, "-e", MATCH_PERL], input=json.dumps(cases), text=True,
                            capture_output=True, check=True, timeout=120)
    expected = json.loads(result.stdout)
    mismatches, matched = [], 0
    for (pattern, href), want in zip(cases, expected, strict=True):
        match = compile_regex(f"(?:{pattern})").fullmatch(href)
        got = [1, *match.groups()] if match else [0]
        matched += bool(match)
        if want is not None and got != [None if g is None else g for g in want]:
            mismatches.append(f"{pattern!r} on {href!r}: perl {want}, ours {got}")
    print(f"\n{len(patterns)} patterns x {len(HREFS)} hrefs agree with perl "
          f"({matched} matches): {len(cases) - len(mismatches)}/{len(cases)}")
    assert mismatches == []
