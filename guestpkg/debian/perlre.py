# SPDX-License-Identifier: GPL-2.0-or-later
"""Perl regular expressions and mangling rules, translated to Python's :mod:`re`.

debian/watch files (see debian-watch(5) and uscan(1), "WATCH FILE OPTIONS") are written
for Perl: the file patterns are Perl regexes and the ``*mangle`` options are Perl
substitution (``s/regex/replacement/flags``) and transliteration (``tr/a-z/A-Z/``,
``y/.../.../``) rules.  uscan applies them through its ``safe_replace``, which allows
only the ``g``, ``i`` and ``x`` flags for ``s`` and ``c``, ``d`` and ``s`` for ``tr``,
and never evaluates code.  This module does the same in pure Python:

- :func:`translate_regex` rewrites the Perl-only syntax that appears in real watch files
  (``\\Q..\\E``, ``\\z``, ``\\Z``, ``\\h``, ``(?<name>..)``, ``\\k<name>``, POSIX classes
  such as ``[[:digit:]]``, inline flags like ``(?i)`` in the middle of a pattern, which
  Perl scopes to the enclosing group and Python 3.11 rejects) and refuses anything that
  would run code (``(?{..})``, ``(??{..})``) or that has no faithful equivalent.
- :func:`parse_rule` parses one mangling rule into a :class:`Rule` whose ``apply``
  does what Perl would.  Replacement strings interpolate ``$1``, ``\\1``, ``${1}`` and
  ``$&`` and honour ``\\u \\l \\U \\L \\E``; ``@{[...]}`` and ``${\\...}``, which Perl
  would execute, and the ``e`` flag are refused.

Errors are :class:`PerlSyntaxError` (a ``ValueError``); the watch parser adds
``file:line`` to them.  Nothing here touches the network or runs a process.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["PerlSyntaxError", "Rule", "apply_rules", "parse_rule", "translate_regex"]


class PerlSyntaxError(ValueError):
    """A Perl regex or mangling rule that is malformed, unsafe, or unsupported."""


# Python re knows these escapes with the same meaning as Perl; other letters differ.
_SAME_ESCAPES = set("AbBdDsSwWntrfa0123456789")
_BRACKETS = {"{": "}", "[": "]", "(": ")", "<": ">"}
_POSIX_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z",
    "lower": "a-z", "space": r"\s", "blank": r" \t", "xdigit": "0-9A-Fa-f",
    "word": r"\w", "cntrl": r"\x00-\x1f\x7f", "print": r"\x20-\x7e",
    "graph": r"\x21-\x7e", "punct": "".join("\\" + c for c in string.punctuation),
}
_INLINE_FLAGS = re.compile(r"\(\?([a-z]*)(?:-([a-z]*))?\)")
# What Perl would evaluate inside an interpolated string or pattern: @{[ code ]},
# ${ \ code }, @$ref, and the subscripts of $hash{..}, $array[..], $ref->..
_CODE_IN_STRING = re.compile(r"@\{|@\$|\$\{(?!\d+\})|[$@][A-Za-z_]\w*(?:\[|\{|->)")


def translate_regex(perl: str) -> str:
    """The Python spelling of the Perl regex *perl*; raises :class:`PerlSyntaxError`."""
    if _CODE_IN_STRING.search(perl):
        raise PerlSyntaxError(f"refusing interpolated code in {perl!r}")
    return _Translator(perl).run()


def compile_regex(perl: str, flags: int = 0) -> re.Pattern[str]:
    try:
        return re.compile(translate_regex(perl), flags)
    except re.error as e:
        raise PerlSyntaxError(f"bad regular expression {perl!r}: {e}") from e


class _Translator:
    """One pass over a Perl regex, tracking character classes and group nesting."""

    def __init__(self, perl: str) -> None:
        self.src = perl
        self.i = 0
        self.out: list[str] = []
        # For each open group: how many extra ')' its inline flags need at its end.
        self.closers = [0]

    def run(self) -> str:
        while self.i < len(self.src):
            char = self.src[self.i]
            if char == "\\":
                self.out.append(self._escape(in_class=False))
            elif char == "[":
                self._char_class()
            elif char == "(":
                self._open_group()
            elif char == ")":
                if len(self.closers) == 1:
                    raise PerlSyntaxError(f"unmatched ')' in {self.src!r}")
                self.out.append(")" * (self.closers.pop() + 1))
                self.i += 1
            else:
                self.out.append(char)
                self.i += 1
        if len(self.closers) != 1:
            raise PerlSyntaxError(f"unmatched '(' in {self.src!r}")
        return "".join(self.out) + ")" * self.closers[0]

    def _escape(self, in_class: bool) -> str:
        src, i = self.src, self.i
        if i + 1 >= len(src):
            raise PerlSyntaxError(f"trailing backslash in {src!r}")
        char = src[i + 1]
        self.i += 2
        if char == "Q":
            end = src.find("\\E", self.i)
            literal = src[self.i:] if end < 0 else src[self.i:end]
            self.i = len(src) if end < 0 else end + 2
            return re.escape(literal)
        if char == "E":
            return ""
        if char == "x" and self.i < len(src) and src[self.i] == "{":
            end = src.index("}", self.i)
            code = int(src[self.i + 1:end] or "0", 16)
            self.i = end + 1
            return re.escape(chr(code))
        if char == "k" and self.i < len(src) and src[self.i] in "<{'":
            close = {"<": ">", "{": "}", "'": "'"}[src[self.i]]
            end = src.index(close, self.i + 1)
            name = src[self.i + 1:end]
            self.i = end + 1
            return f"(?P={name})"
        simple = {"z": r"\Z", "Z": r"(?=\n?\Z)", "h": r"[ \t]", "e": r"\x1b", "x": r"\x"}
        if in_class:
            simple.update({"h": r" \t", "b": r"\x08"})
        if char in simple:
            return simple[char]
        if char.isalpha() and char not in _SAME_ESCAPES:
            raise PerlSyntaxError(f"unsupported Perl escape \\{char} in {src!r}")
        return "\\" + char

    def _char_class(self) -> None:
        src = self.src
        self.out.append("[")
        self.i += 1
        if src.startswith("^", self.i):
            self.out.append("^")
            self.i += 1
        if src.startswith("]", self.i):  # a leading ']' is literal in Perl
            self.out.append(r"\]")
            self.i += 1
        while self.i < len(src):
            char = src[self.i]
            if char == "]":
                self.out.append("]")
                self.i += 1
                return
            if char == "\\":
                self.out.append(self._escape(in_class=True))
                continue
            posix = re.match(r"\[:(\^?)([a-z]+):\]", src[self.i:])
            if posix:
                if posix.group(1) or posix.group(2) not in _POSIX_CLASSES:
                    raise PerlSyntaxError(f"unsupported POSIX class {posix.group(0)} in {src!r}")
                self.out.append(_POSIX_CLASSES[posix.group(2)])
                self.i += posix.end()
                continue
            # Python reserves [ && ~~ || -- inside sets for future syntax.
            if char in "[&~|" or (char == "-" and src.startswith("--", self.i)):
                self.out.append("\\" + char)
            else:
                self.out.append(char)
            self.i += 1
        raise PerlSyntaxError(f"unterminated character class in {src!r}")

    def _open_group(self) -> None:
        src, i = self.src, self.i
        rest = src[i:]
        if rest.startswith(("(?{", "(??{", "(?(?{", "(*")) or re.match(r"\(\?\??&|\(\?R\)", rest):
            raise PerlSyntaxError(f"refusing Perl code or control construct in {src!r}")
        flags = _INLINE_FLAGS.match(rest)
        if flags and (flags.group(1) or flags.group(2)):
            on, off = flags.group(1), flags.group(2) or ""
            if set(on + off) - set("imsx"):
                raise PerlSyntaxError(f"unsupported inline flags {flags.group(0)} in {src!r}")
            self.i += flags.end()
            if not self.out and len(self.closers) == 1 and not off:
                self.out.append(flags.group(0))  # global flags at the start: same in Python
                return
            # Perl scopes mid-pattern flags to the rest of the enclosing group.
            self.out.append(f"(?{on}-{off}:" if off else f"(?{on}:")
            self.closers[-1] += 1
            return
        named = re.match(r"\(\?(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)'|P<([A-Za-z_]\w*)>)", rest)
        if named:
            self.out.append(f"(?P<{named.group(1) or named.group(2) or named.group(3)}>")
            self.i += named.end()
        elif rest.startswith("(?#"):
            end = src.index(")", i)
            self.i = end + 1
            return
        elif rest.startswith("(?^"):
            raise PerlSyntaxError(f"unsupported (?^...) group in {src!r}")
        else:
            prefix = re.match(r"\((?:\?(?:[:=!>|]|<[=!]|P=\w+\)?))?", rest)
            assert prefix is not None
            text = prefix.group(0)
            if text.startswith("(?P="):
                self.out.append(text)
                self.i += len(text)
                return
            if text == "(?|":
                raise PerlSyntaxError(f"unsupported branch-reset group in {src!r}")
            self.out.append(text)
            self.i += len(text)
        self.closers.append(0)


# -- mangling rules ---------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """One parsed mangling rule; ``apply`` returns the mangled string."""

    text: str
    apply: Callable[[str], str]


def apply_rules(rules: Sequence[Rule], value: str) -> str:
    for rule in rules:
        value = rule.apply(value)
    return value


def parse_rule(text: str) -> Rule:
    """Parse ``s/../../flags``, ``tr/../../flags`` or ``y/../../flags``."""
    rule = text.strip()
    head = re.match(r"(s|tr|y)(.)", rule, re.S)
    if not head or head.group(2).isalnum() or head.group(2).isspace():
        raise PerlSyntaxError(f"not a s///, tr/// or y/// rule: {text!r}")
    op, sep = head.group(1), head.group(2)
    if sep in _BRACKETS:
        pattern, replacement, flags = _split_bracketed(rule[head.end():], sep)
    else:
        esc = re.escape(sep)
        body = re.fullmatch(rf"{esc}((?:\\.|[^\\{esc}])*){esc}((?:\\.|[^\\{esc}])*){esc}(\w*)",
                            rule[head.end() - 1:], re.S)
        if not body:
            raise PerlSyntaxError(f"malformed rule {text!r}: expected {op}{sep}..{sep}..{sep}flags")
        pattern, replacement, flags = body.group(1), body.group(2), body.group(3)
    if op == "s":
        return Rule(rule, _substitution(rule, pattern, replacement, flags, sep))
    return Rule(rule, _transliteration(rule, pattern, replacement, flags))


def _split_bracketed(rest: str, opener: str) -> tuple[str, str, str]:
    """``{regex}{replacement}flags`` (also with () [] <>), blanks allowed between."""
    closer = _BRACKETS[opener]
    parts: list[str] = []
    i = 0
    while len(parts) < 2:
        if len(parts) == 1:
            while i < len(rest) and rest[i].isspace():
                i += 1
            if i >= len(rest) or rest[i] != opener:
                raise PerlSyntaxError(f"expected {opener} to open the replacement")
            i += 1
        depth, start = 1, i
        while i < len(rest):
            char = rest[i]
            if char == "\\":
                i += 2
                continue
            depth += (char == opener) - (char == closer)
            if depth == 0:
                break
            i += 1
        if depth:
            raise PerlSyntaxError(f"unbalanced {opener}{closer} in rule")
        parts.append(rest[start:i])
        i += 1
    flags = rest[i:]
    if not re.fullmatch(r"\w*", flags):
        raise PerlSyntaxError(f"junk after the rule: {flags!r}")
    return parts[0], parts[1], flags


def _substitution(rule: str, pattern: str, replacement: str, flags: str,
                  sep: str) -> Callable[[str], str]:
    if "e" in flags:
        raise PerlSyntaxError(f"refusing the 'e' flag, which runs code: {rule!r}")
    if set(flags) - set("gix"):
        raise PerlSyntaxError(f"flags of s/// must be g, i or x, got {flags!r} in {rule!r}")
    if re.search(r"(?<!\\)(?:\\\\)*\\G", pattern):
        raise PerlSyntaxError(f"\\G is not supported: {rule!r}")
    re_flags = (re.IGNORECASE if "i" in flags else 0) | (re.VERBOSE if "x" in flags else 0)
    regex = compile_regex(pattern, re_flags)
    template = _parse_replacement(replacement, rule)
    count = 0 if "g" in flags else 1

    def expand(match: re.Match[str]) -> str:
        return _render(template, match)

    def apply(value: str) -> str:
        return regex.sub(expand, value, count=count)
    return apply


# A replacement is a list of tokens: ("text", s), ("group", "1"|"name"), ("case", "U").
_Token = tuple[str, str]


def _parse_replacement(text: str, rule: str) -> list[_Token]:
    if _CODE_IN_STRING.search(text):
        raise PerlSyntaxError(f"refusing interpolated code in the replacement: {rule!r}")
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            i += 2
            if nxt in "luLUE":
                tokens.append(("case", nxt))
            elif nxt.isdigit():
                tokens.append(("group", nxt))
            else:
                tokens.append(("text", {"n": "\n", "t": "\t"}.get(nxt, nxt)))
            continue
        group = re.match(r"\$(?:(\d)|\{(\d+)\}|(&)|\+\{(\w+)\})", text[i:])
        if group:
            name = group.group(1) or group.group(2) or group.group(4) or "0"
            tokens.append(("group", name))
            i += group.end()
            continue
        tokens.append(("text", char))
        i += 1
    return tokens


def _render(tokens: list[_Token], match: re.Match[str]) -> str:
    out: list[str] = []
    span_mode = ""     # "U" or "L" until \E
    next_char = ""     # "u" or "l" for the next character only
    for kind, value in tokens:
        if kind == "case":
            if value in "ul":
                next_char = value
            else:
                span_mode = "" if value == "E" else value
            continue
        piece = value if kind == "text" else _group(match, value)
        if span_mode:
            piece = piece.upper() if span_mode == "U" else piece.lower()
        if next_char and piece:
            head = piece[0].upper() if next_char == "u" else piece[0].lower()
            piece, next_char = head + piece[1:], ""
        out.append(piece)
    return "".join(out)


def _group(match: re.Match[str], name: str) -> str:
    try:
        value = match.group(int(name) if name.isdigit() else name)
    except IndexError:  # Perl interpolates a group that does not exist as ""
        return ""
    return value or ""


def _tr_list(spec: str) -> list[str]:
    """Expand a tr/// list: escapes are taken literally (as uscan does), a-z ranges."""
    chars: list[str] = []
    i = 0
    while i < len(spec):
        if spec[i] == "\\" and i + 1 < len(spec):
            chars.append(spec[i + 1])
            i += 2
            continue
        if (spec[i] == "-" and chars and i + 1 < len(spec)
                and not (i >= 2 and spec[i - 2] == "\\")):
            start, end = chars.pop(), spec[i + 1]
            if ord(end) < ord(start):
                raise PerlSyntaxError(f"invalid range {start}-{end} in tr///")
            chars.extend(chr(c) for c in range(ord(start), ord(end) + 1))
            i += 2
            continue
        chars.append(spec[i])
        i += 1
    return chars


def _transliteration(rule: str, search: str, replace: str,
                     flags: str) -> Callable[[str], str]:
    if set(flags) - set("cds"):
        raise PerlSyntaxError(f"flags of tr/// must be c, d or s, got {flags!r} in {rule!r}")
    source, target = _tr_list(search), _tr_list(replace)
    complement, delete, squeeze = "c" in flags, "d" in flags, "s" in flags
    if not target and not delete:
        target = source
    mapping: dict[str, str | None] = {}
    if not complement:
        for index, char in enumerate(source):
            if char in mapping:
                continue  # Perl uses the first occurrence
            if index < len(target):
                mapping[char] = target[index]
            else:
                mapping[char] = None if delete else (target[-1] if target else char)
    members = set(source)

    def translate(char: str) -> str | None:
        """The replacement of *char*, or None to delete it; KeyError: untouched."""
        if complement:
            if char in members:
                raise KeyError(char)
            if delete and not replace:
                return None
            return target[-1] if replace and target else char
        return mapping[char]

    def apply(value: str) -> str:
        out: list[str] = []
        last_translated: str | None = None
        for char in value:
            try:
                new = translate(char)
            except KeyError:
                out.append(char)
                last_translated = None
                continue
            if new is None:
                continue
            if squeeze and last_translated == new:
                continue
            out.append(new)
            last_translated = new
        return "".join(out)
    return apply
