# SPDX-License-Identifier: GPL-2.0-or-later
"""What apt sees in a build's dependency phase besides the base root's own sources:
sbuild's ``--extra-package``, ``--extra-repository`` with ``--extra-repository-key``,
and the foreign architecture of ``--host-arch``.

All of it is put together on the host, in the build's work directory, as one tree
that the dependency phase's apt commands see read-only at :data:`EXTRA_MOUNT`::

    debs/             the extra .debs, copied under names of our own, and a Packages
                      index written here (a flat repository, sources.list(5) ``./``)
    keys/N.asc|.gpg   the repositories' keys (apt's Signed-By takes either form)
    ca-certificates.crt  with an https repository: the CA set apt checks its server
                      against (``Acquire::https::CaInfo``, :func:`https_options`):
                      this system's, and ``--extra-repository-ca``'s certificates
    sources.list      the local repository and each --extra-repository line, each
                      with signed-by= naming the keys (nothing else is trusted)
    parts/            empty: apt-get update of these sources reads no other file
    lists/            apt's lists of these sources (apt-get update, once per build)
                      and, for --host-arch, the foreign architecture's lists of the
                      root's own sources (cached per generation, ``cross_lists``)

Every apt command of the phase first copies ``lists/`` into the root's
``/var/lib/apt/lists`` and ``sources.list`` into ``sources.list.d``
(:func:`apt_prefix`); the layer's installation removes them again, so a layer holds
the installed packages (and dpkg's foreign architecture) only.

The extra .debs are hostile input: each is opened without following symlinks,
bounded in size, copied, and read by :func:`guestpkg.debian.debfile.read_deb` (which
extracts nothing); its control fields are parsed strictly, its name, version and
architecture checked, and the index is written by this code from those values, under
a file name of ours.  The index never passes through a shell or an option.

:attr:`Extras.identity` hashes everything apt will see (the index with each
.deb's SHA256, the repositories' lines and keys, the lists fetched, the host
architecture): it is part of the build-dependency layer's key, so a different extra
package or a repository's new state makes a different layer.  The CA set is not in
it: it decides which server apt talks to, not what apt installs (the lists, hashed,
and the Release file's signature decide that).

An https repository is checked as apt on this machine checks one: against this
system's CA set (:data:`SYSTEM_CA_FILE`, Debian's ca-certificates and any local CA
added with update-ca-certificates(8)), not the base root's, which a buildd root does
not have; ``--extra-repository-ca FILE`` adds the certificates of a private CA for
this build alone (apt.conf(5) ``Acquire::https::CaInfo``; apt-transport-https(1)).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from guestpkg import fsutil
from guestpkg.buildroot.sources import parse_one_line
from guestpkg.debian import deb822
from guestpkg.debian.debfile import AR_MAGIC, read_deb
from guestpkg.errors import InputError, ParseError, UnsafeArchive, UsageError
from guestpkg.text import one_line

#: Where the dependency phase's apt commands see the extra tree (read-only).
EXTRA_MOUNT = "/guestpkg-extra"
#: Where ``apt-get update`` of the extra sources writes its lists (that step only).
LISTS_MOUNT = "/guestpkg-extra-lists"
#: The name the extra sources get in the root's sources.list.d while apt runs.
SOURCES_NAME = "guestpkg-extra.list"

#: Bounds on the hostile input: an extra .deb, the number of them, a key file, a CA
#: file (Debian's whole CA set is about 220 KiB).
MAX_EXTRA_DEB_BYTES = 2 << 30
MAX_EXTRA_DEBS = 1000
MAX_KEY_BYTES = 1 << 20
MAX_CA_BYTES = 4 << 20

#: This system's CA set, as update-ca-certificates(8) writes it: what apt and
#: guestpkg's own downloads on this machine trust.
SYSTEM_CA_FILE = Path("/etc/ssl/certs/ca-certificates.crt")
#: The CA set of an https extra repository, in the extra tree.
CA_BUNDLE = "ca-certificates.crt"
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?"
                              rb"-----END CERTIFICATE-----")

#: A Debian architecture name (dpkg-architecture -L): nothing that could be an option,
#: a path or a shell word.
ARCH = re.compile(r"\A[a-z0-9][a-z0-9-]{0,31}\Z")

#: The parts of an ``--extra-repository`` line (sources.list(5), one-line style).
#: No '#' (sources.list(5) reads the rest of the line as a comment), no '[' or space.
_URI = re.compile(r"\Ahttps?://[A-Za-z0-9._~:/?@!$&'()*+,;=%-]+\Z")
_SUITE = re.compile(r"\A[A-Za-z0-9._+~/-]+\Z")
_COMPONENT = re.compile(r"\A[A-Za-z0-9._+-]+\Z")

#: Fields of a Packages stanza that the index writes itself (a .deb's control file
#: never sets them: they would point apt at another file).
_INDEX_FIELDS = frozenset({"filename", "size", "md5sum", "sha1", "sha256", "sha512",
                           "description-md5"})


@dataclass(frozen=True)
class ExtraSources:
    """The request: ``--extra-package`` (files or directories of .debs),
    ``--extra-repository`` lines and ``--extra-repository-key`` files."""

    packages: tuple[Path, ...] = ()
    repositories: tuple[str, ...] = ()
    keys: tuple[Path, ...] = ()
    ca_file: Path | None = None         # --extra-repository-ca

    def __bool__(self) -> bool:
        return bool(self.packages or self.repositories or self.keys or self.ca_file)


@dataclass(frozen=True)
class Repository:
    """One ``deb URI SUITE [COMPONENT...]`` line (a flat repository when SUITE ends
    in ``/`` and there are no components), or a ``deb-src`` line (*kind*)."""

    uri: str
    suite: str
    components: tuple[str, ...]
    kind: str = "deb"

    def line(self, keyrings: Sequence[str]) -> str:
        options = f"[signed-by={','.join(keyrings)}] " if keyrings else ""
        return " ".join((f"deb {options}{self.uri}", self.suite, *self.components))


def parse_repository(text: str) -> Repository:
    """An ``--extra-repository`` line, checked strictly: ``deb`` (or ``deb-src``), an
    http(s) URI, a suite and components; no options (the keys come from
    ``--extra-repository-key``)."""
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise UsageError(f"--extra-repository {text!r}: control characters are not "
                         "allowed", hint="give one line: 'deb URI SUITE COMPONENT...'")
    words = text.split()
    what = f"--extra-repository {text!r}"
    hint = "give it as sbuild takes it, e.g. 'deb http://HOST/debian bookworm main'"
    if not words or words[0] not in ("deb", "deb-src"):
        raise UsageError(f"{what}: not a 'deb URI SUITE COMPONENT...' line", hint=hint)
    if len(words) > 1 and words[1].startswith("["):
        raise UsageError(f"{what}: options in [...] are not taken; the repository is "
                         "verified with the keys of --extra-repository-key", hint=hint)
    if len(words) < 3:
        raise UsageError(f"{what}: a URI and a suite are needed", hint=hint)
    uri, suite, components = words[1], words[2], tuple(words[3:])
    if not _URI.match(uri):
        raise UsageError(f"{what}: {uri!r} is not an http:// or https:// URI "
                         "(local .debs go in with --extra-package)", hint=hint)
    if not _SUITE.match(suite) or ".." in suite.split("/") or suite.startswith("/"):
        raise UsageError(f"{what}: bad suite {suite!r}", hint=hint)
    if suite.endswith("/") != (not components):
        raise UsageError(f"{what}: a suite ending in '/' (a flat repository) takes no "
                         "components, any other suite needs them", hint=hint)
    for component in components:
        if not _COMPONENT.match(component):
            raise UsageError(f"{what}: bad component {component!r}", hint=hint)
    return Repository(uri, suite, components, words[0])


def ca_bundle(request: ExtraSources, repositories: Sequence[Repository]) -> bytes | None:
    """The CA set for the https servers among *repositories* (None if there are
    none): this system's, and the certificates of ``--extra-repository-ca``, each
    checked to be a PEM X.509 certificate."""
    https = [r.uri for r in repositories if r.uri.startswith("https://")]
    if request.ca_file is not None and not https:
        raise UsageError("--extra-repository-ca given without an https --extra-repository",
                         hint="it names the CA of an https repository's server")
    if not https:
        return None
    bundle = b""
    if os.path.isfile(SYSTEM_CA_FILE):
        with open(SYSTEM_CA_FILE, "rb") as f:   # the system's own configuration
            bundle = f.read(MAX_CA_BYTES + 1)
        if len(bundle) > MAX_CA_BYTES:
            raise UsageError(f"{SYSTEM_CA_FILE}: more than {MAX_CA_BYTES >> 20} MiB")
    if request.ca_file is not None:
        fd, _st = _open_given(request.ca_file, "--extra-repository-ca", MAX_CA_BYTES)
        with os.fdopen(fd, "rb") as f:
            given = f.read(MAX_CA_BYTES + 1)
        check_certificates(given, request.ca_file)
        bundle = bundle.rstrip(b"\n") + b"\n" + given if bundle else given
    if not bundle:
        raise UsageError(f"--extra-repository {https[0]}: this system has no CA "
                         f"certificates ({SYSTEM_CA_FILE}) to check the server with",
                         hint="apt-get install ca-certificates, or give the server's CA "
                         "with --extra-repository-ca FILE.pem")
    return bundle


def check_certificates(data: bytes, shown: Path) -> None:
    """Refuse *data* unless it holds PEM certificates only, each one X.509 that
    python3-cryptography reads (apt's GnuTLS would otherwise fail later, with a less
    clear message)."""
    from cryptography import x509

    blocks = _PEM_CERTIFICATE.findall(data)
    rest = _PEM_CERTIFICATE.sub(b"", data)
    try:
        for block in blocks:
            x509.load_pem_x509_certificate(block)
    except ValueError:
        blocks = []
    if not blocks or b"-----BEGIN" in rest:
        raise UsageError(f"--extra-repository-ca {shown}: not a PEM certificate "
                         "(-----BEGIN CERTIFICATE-----)",
                         hint="give the CA's certificate in PEM form, e.g. as "
                         "openssl x509 -in CA.crt -outform PEM writes it")


def https_options(extras: Extras) -> list[str]:
    """apt's options for the steps that reach an https extra repository (its
    ``apt-get update`` and the download step): the CA set of :func:`ca_bundle`,
    for every https server of the step (a repository may redirect to another
    host)."""
    if not (extras.directory / CA_BUNDLE).is_file():
        return []
    return ["-o", f"Acquire::https::CaInfo={EXTRA_MOUNT}/{CA_BUNDLE}"]


#: apt's messages of a TLS handshake that failed on the certificate (methods/connect.cc).
_TLS_FAILURE = re.compile(r"(Certificate verification failed|Could not handshake)[^\n]*")


def certificate_failure(text: str) -> str | None:
    """apt's reason, on one line (a server chose part of it), when *text* (apt's
    output) says an https server's certificate was refused; else None."""
    found = _TLS_FAILURE.search(text)
    return one_line(found.group(0))[:300] if found else None


def check_arch(arch: str) -> str:
    if not ARCH.match(arch):
        raise UsageError(f"--host-arch {arch!r} is not a Debian architecture name",
                         hint="e.g. --host-arch arm64 (dpkg-architecture -L lists them)")
    return arch


def key_suffix(data: bytes, shown: Path | str) -> str:
    """``.asc`` for an ASCII-armored OpenPGP public key, ``.gpg`` for a binary one
    (its first packet a public key: RFC 4880 tag 6, old or new format); anything else
    is refused.  apt's Signed-By reads both forms by their suffix (sources.list(5))."""
    if data.lstrip().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
        return ".asc"
    if data[:1] and (data[0] & 0xFC == 0x98 or data[0] == 0xC6):
        return ".gpg"
    raise UsageError(f"--extra-repository-key {shown}: not an OpenPGP public key",
                     hint="export it with gpg --export KEYID > FILE (or --armor)")


@dataclass(frozen=True)
class IndexedDeb:
    """One extra .deb as it went into the index."""

    package: str
    version: str
    arch: str
    file_name: str
    stanza: str


def _open_given(path: Path, what: str, max_bytes: int) -> tuple[int, os.stat_result]:
    """The regular file *path* the user named, opened without following a symlink."""
    try:
        return fsutil.open_untrusted(path.parent, path.name, shown=path,
                                     max_bytes=max_bytes)
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file",
                         hint="check the path (a file, or a directory of .debs)") from None
    except InputError as e:
        raise UsageError(f"{what} {e.message}") from None


def deb_paths(given: Iterable[Path]) -> list[Path]:
    """The .debs of ``--extra-package``: each file as given, and the ``*.deb`` files
    directly in each directory (not below it)."""
    found: list[Path] = []
    for path in given:
        if path.is_dir() and not path.is_symlink():
            names = sorted(name for name in os.listdir(path) if name.endswith(".deb"))
            if not names:
                raise UsageError(f"--extra-package {path}: no .deb files in this directory")
            found += [path / name for name in names]
        elif not path.exists() and not path.is_symlink():
            raise UsageError(f"--extra-package {path}: no such file or directory",
                             hint="give a .deb file or a directory of .debs")
        else:
            found.append(path)
    if len(found) > MAX_EXTRA_DEBS:
        raise UsageError(f"--extra-package: {len(found)} .debs, more than the "
                         f"{MAX_EXTRA_DEBS} allowed")
    return found


def index_deb(source: Path, directory: Path) -> IndexedDeb:
    """Copy the .deb *source* into *directory* under its canonical name and return
    its Packages stanza; a file that is not a well-formed .deb is refused."""
    fd, _st = _open_given(source, "--extra-package", MAX_EXTRA_DEB_BYTES)
    tmp = directory / f".incoming-{os.getpid()}.deb"
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as src:
        magic = src.read(len(AR_MAGIC))
        if magic != AR_MAGIC:
            raise UsageError(f"--extra-package {source}: not a Debian binary package "
                             "(.deb)", hint="build one with dpkg-deb --build")
        with open(tmp, "xb") as dst:
            size = len(magic)
            digest.update(magic)
            dst.write(magic)
            while size <= MAX_EXTRA_DEB_BYTES and (block := src.read(1 << 20)):
                size += len(block)
                digest.update(block)
                dst.write(block)
    try:
        if size > MAX_EXTRA_DEB_BYTES:
            raise UsageError(f"--extra-package {source}: larger than "
                             f"{MAX_EXTRA_DEB_BYTES >> 20} MiB")
        with open(tmp, "rb") as f:
            contents = read_deb(f, size)
        fields = _control_fields(contents.control_text, source)
    except (UnsafeArchive, ParseError) as e:
        tmp.unlink()
        raise UsageError(f"--extra-package {source}: not a usable .deb: {e.message}",
                         hint="build it with dpkg-deb --build") from None
    except UsageError:
        tmp.unlink()
        raise
    package, version, arch = fields["Package"], fields["Version"], fields["Architecture"]
    name = f"{package}_{version.replace(':', '%3a')}_{arch}.deb"
    os.chmod(tmp, 0o644)
    os.rename(tmp, directory / name)
    stanza = deb822.format_stanza([*fields.items(), ("Filename", f"./{name}"),
                                   ("Size", str(size)), ("SHA256", digest.hexdigest())])
    return IndexedDeb(package, version, arch, name, stanza)


def _control_fields(text: str, source: Path) -> dict[str, str]:
    """The control file's fields (deb-control(5)) as written, strictly parsed; the
    index's own fields dropped; Package, Version and Architecture checked."""
    stanzas = deb822.parse(text, f"{source} (control)")
    if len(stanzas) != 1:
        raise UsageError(f"--extra-package {source}: the control file has "
                         f"{len(stanzas)} stanzas, not one")
    stanza = stanzas[0]
    fields = {stanza.names.get(key, key): value for key, value in stanza.fields.items()
              if key not in _INDEX_FIELDS}
    for required in ("Package", "Version", "Architecture"):
        if stanza.get(required) is None:
            raise UsageError(f"--extra-package {source}: no {required} field")
    package = stanza.get("package") or ""
    version = stanza.get("version") or ""
    arch = stanza.get("architecture") or ""
    if not deb822.is_package_name(package):
        raise UsageError(f"--extra-package {source}: bad package name {package!r}")
    if not deb822.is_version(version):
        raise UsageError(f"--extra-package {source}: bad version {version!r}")
    if arch != "all" and not ARCH.match(arch):
        raise UsageError(f"--extra-package {source}: bad architecture {arch!r}")
    canonical = {"package": "Package", "version": "Version", "architecture": "Architecture"}
    return {canonical.get(name.lower(), name): value for name, value in fields.items()}


@dataclass(frozen=True)
class Extras:
    """The extra tree of one build, made by :func:`prepare`."""

    directory: Path                 # <work>/extra, bound at EXTRA_MOUNT
    identity: str                   # hex; "" when there is nothing extra
    repositories: tuple[Repository, ...] = ()
    debs: tuple[IndexedDeb, ...] = ()
    foreign_arch: str = ""          # --host-arch, when it is not the build arch
    #: deb-src lines: checked, then left out (a build from a source tree or a .dsc
    #: reads no Sources index, and fetching one could only fail the build)
    unused_sources: tuple[Repository, ...] = ()
    #: The identity of the same build without its extra packages (None with a
    #: repository): a layer of that variant, whose packages all came from the root's
    #: own sources, may be the parent of this build's layer (depends.over_subset_layer)
    base_identity: str | None = ""

    @property
    def lists(self) -> Path:
        return self.directory / "lists"

    @property
    def needs_update(self) -> bool:
        """Whether ``apt-get update`` of the extra sources must run (a local index
        or a repository: their lists are not in the root)."""
        return bool(self.repositories or self.debs)


def prepare(request: ExtraSources, host_arch: str, build_arch: str, work: Path) -> Extras:
    """Check the request and make ``<work>/extra`` (see the module docstring), all
    but its lists; raises :class:`UsageError` with one line on bad input."""
    given = tuple(parse_repository(line) for line in request.repositories)
    repositories = tuple(r for r in given if r.kind == "deb")
    if repositories and not request.keys:
        raise UsageError("--extra-repository needs --extra-repository-key FILE (the key "
                         "its Release file is signed with)",
                         hint="export it with gpg --export KEYID > FILE")
    if request.keys and not given:
        raise UsageError("--extra-repository-key given without --extra-repository")
    bundle = ca_bundle(request, repositories)
    foreign = host_arch if host_arch != build_arch else ""
    directory = work / "extra"
    for sub in ("", "debs", "keys", "parts", "lists"):
        (directory / sub).mkdir(mode=0o755, exist_ok=True)
    if bundle is not None:
        fsutil.atomic_write(directory / CA_BUNDLE, bundle)  # 0644: apt's methods are _apt
    keyrings = []
    for n, key in enumerate(request.keys, 1):
        fd, _st = _open_given(key, "--extra-repository-key", MAX_KEY_BYTES)
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_KEY_BYTES + 1)
        name = f"{n}{key_suffix(data, key)}"
        if repositories:        # (with deb-src lines only, checked and not used)
            fsutil.atomic_write(directory / "keys" / name, data)
            keyrings.append(f"{EXTRA_MOUNT}/keys/{name}")
    debs: list[IndexedDeb] = []
    for path in deb_paths(request.packages):
        deb = index_deb(path, directory / "debs")
        if any(d.file_name == deb.file_name and d.stanza != deb.stanza for d in debs):
            raise UsageError(f"--extra-package: two different .debs are both "
                             f"{deb.package} {deb.version} ({deb.arch})")
        if all(d.file_name != deb.file_name for d in debs):
            debs.append(deb)
    lines = [line.line(keyrings) for line in repositories]
    if debs:
        # The index is ours, made above from checked values: nothing to verify.
        lines.insert(0, f"deb [trusted=yes] file:{EXTRA_MOUNT}/debs ./")
    fsutil.atomic_write(directory / "debs" / "Packages",
                        "\n".join(deb.stanza for deb in debs))
    fsutil.atomic_write(directory / "sources.list", "".join(f"{line}\n" for line in lines))
    return Extras(directory, "", repositories, tuple(debs), foreign,
                  tuple(r for r in given if r.kind == "deb-src"))


def with_identity(extras: Extras, host_arch: str) -> Extras:
    """*extras* with its :attr:`~Extras.identity`: the SHA256 of the host
    architecture and of every file apt will read (a repository's lists once fetched;
    apt's index of the local .debs is a symlink to ours, which is hashed itself);
    and its :attr:`~Extras.base_identity`."""
    if not extras.debs and not extras.repositories and not extras.foreign_arch:
        return extras
    top = extras.directory
    lists = [(str(path.relative_to(top)), _sha256(path)) for path in list_files(extras.lists)]
    own = [(str(path.relative_to(top)), _sha256(path)) for path in
           [top / "sources.list", top / "debs" / "Packages", *sorted((top / "keys").iterdir())]]
    base: str | None = None
    if not extras.repositories:
        # What prepare() writes for the same build without extra packages.
        nothing = hashlib.sha256(b"").digest()
        base = _identity(host_arch, [("sources.list", nothing), ("debs/Packages", nothing),
                                     *lists]) if extras.foreign_arch else ""
    return dataclasses.replace(extras, identity=_identity(host_arch, own + lists),
                               base_identity=base)


def _sha256(path: Path) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def _identity(host_arch: str, files: Iterable[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256(f"guestpkg-extras 1\nhost-arch {host_arch}\n".encode())
    for name, file_digest in files:
        digest.update(f"{name}\n".encode())
        digest.update(file_digest)
    return digest.hexdigest()


def list_files(directory: Path) -> list[Path]:
    """apt's list files in *directory* (``host_path_...``), not its lock or partial/."""
    if not directory.is_dir():
        return []
    return sorted(entry for entry in directory.iterdir()
                  if "_" in entry.name and entry.is_file() and not entry.is_symlink())


def drop_lists_of_root(extras: Extras, root_lists: Path) -> None:
    """Remove the lists an extra repository shares with the root (the user named one
    of the root's own sources): the root's frozen lists stay as they are, and the
    layer's installation, which removes the copied lists again, never whites them
    out."""
    for path in list_files(extras.lists):
        if os.path.lexists(root_lists / path.name):
            path.unlink()


def cross_sources(base_sources: Sequence[str], arch: str) -> str:
    """The root's own sources restricted to *arch* (sources.list(5) ``arch=``): what
    ``apt-get update`` fetches for the foreign architecture's lists."""
    entries = parse_one_line("\n".join(base_sources))
    return "".join(f"deb [arch={arch}] {e.uri} {e.suite} {' '.join(e.components)}\n"
                   for e in entries)


def copy_lists(source: Path, target: Path, only: str = "") -> None:
    """Link (or copy, across file systems) the list files of *source* (written by apt
    in a step of ours, never changed after) whose names contain *only* into *target*:
    a foreign architecture's lists are tens of MiB, and every build takes them."""
    for path in list_files(source):
        if only in path.name:
            try:
                os.link(path, target / path.name, follow_symlinks=False)
            except OSError:
                shutil.copyfile(path, target / path.name, follow_symlinks=False)


def cross_build_packages(tools: Sequence[str], host_arch: str) -> list[str]:
    """What a cross build needs installed, as sbuild's CROSSBUILD_CORE_DEPENDS: the
    build's own *tools* for the build architecture (``:native``), the cross
    toolchain, and the host architecture's libc and libstdc++ development files
    (Debian bug #815172)."""
    return [f"{name}:native" for name in tools] + [
        f"crossbuild-essential-{host_arch}:native", f"libc-dev:{host_arch}",
        f"libstdc++-dev:{host_arch}"]


def cross_environment(environment: Mapping[str, str], host_arch: str,
                      jobs: int) -> dict[str, str]:
    """The build's *environment* (``--env``), and for a cross build (*host_arch*
    not "") what sbuild adds: autoconf's site file for the host architecture
    (dpkg-cross's, read if it exists) and ``nocheck`` (the tests' binaries do not run
    here) unless DEB_BUILD_OPTIONS is given."""
    env = dict(environment)
    if host_arch:
        env.setdefault("CONFIG_SITE", f"/etc/dpkg-cross/cross-config.{host_arch}")
        env.setdefault("DEB_BUILD_OPTIONS", f"nocheck parallel={jobs}")
    return env


def apt_prefix(extras: Extras) -> str:
    """The shell commands (fixed text: every name in them is ours) that put the extra
    sources and lists into the root before an apt command of the dependency phase,
    and add the foreign architecture to dpkg."""
    commands = []
    if extras.foreign_arch:
        commands.append(f"dpkg --add-architecture {extras.foreign_arch}")
    # apt keeps a file: source's index as a symlink to it (in the extra tree): -P.
    commands.append(f"find {EXTRA_MOUNT}/lists -maxdepth 1 \\( -type f -o -type l \\) "
                    "-name '*_*' -exec cp -P -t /var/lib/apt/lists {} +")
    commands.append(f"cp {EXTRA_MOUNT}/sources.list /etc/apt/sources.list.d/{SOURCES_NAME}")
    return "; ".join(commands) + "; "


def apt_cleanup() -> str:
    """The shell commands that take the copied lists and sources out of the root
    again (the end of a layer's installation)."""
    return (f"for f in {EXTRA_MOUNT}/lists/*_*; do rm -f \"/var/lib/apt/lists/${{f##*/}}\"; "
            f"done; rm -f /etc/apt/sources.list.d/{SOURCES_NAME}; ")
