# SPDX-License-Identifier: GPL-2.0-or-later
"""Settings, declared once in :data:`SETTINGS` and resolved in one order.

Each setting is a row of the table.  The same row makes the command-line option
(``--name``), the environment variable (``GUESTPKG_NAME``) and the key in
``/etc/guestpkg/guestpkg.conf`` and ``/etc/guestpkg/guestpkg.conf.d/*.conf``.
A value is taken from the first of these that has it:

1. the command line,
2. the environment (``GUESTPKG_*``),
3. the ``.conf.d`` snippets (in name order, later wins), then ``guestpkg.conf``,
4. the built-in default.

The configuration file format is one ``key = value`` per line; ``#`` starts a comment;
keys use dashes or underscores alike.  See guestpkg.conf(5).

``GUESTPKG_CONFDIR`` (environment only) moves ``/etc/guestpkg``, for tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from guestpkg.errors import ConfigError

DEFAULT_CONFDIR = Path("/etc/guestpkg")


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "yes", "true", "on"):
        return True
    if value in ("0", "no", "false", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r} (use yes or no)")


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text
    parse.__name__ = "choice"
    return parse


#: What ``--run-*`` checks the build may run after it (guestpkg.build.postbuild).
POST_BUILD_CHECKS = ("lintian", "piuparts", "autopkgtest")


def parse_post_build_checks(text: str) -> str:
    """A comma-separated subset of :data:`POST_BUILD_CHECKS`, normalised."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if item not in POST_BUILD_CHECKS:
            raise ValueError(f"{item!r} is not one of {', '.join(POST_BUILD_CHECKS)}")
    return ",".join(items)


def parse_seconds(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``3h``; 0 means no limit."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    factor = units.get(text[-1:])
    number = text[:-1] if factor else text
    value = float(number) * (factor or 1)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def parse_size(text: str) -> int:
    """``1048576``, ``512K``, ``64M``, ``2G`` (powers of 1024)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    factor = units.get(text[-1:])
    number = text[:-1] if factor else text
    value = int(float(number) * (factor or 1))
    if value < 0:
        raise ValueError("must not be negative")
    return value


def parse_int(text: str) -> int:
    return int(text)


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str                       # the Config field; --name-with-dashes on the CLI
    parse: Callable[[str], Any]
    default: Any
    help: str
    commands: tuple[str, ...] = ()  # subcommands offering it as an option; () = none
    metavar: str | None = None
    shown_default: str | None = None  # how --help and the man page show the default

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_var(self) -> str:
        return "GUESTPKG_" + self.name.upper()


def _user_dir(variable: str, fallback: str, *tail: str) -> Path:
    """``$variable/guestpkg`` (the XDG base directories: an absolute path, or else
    ~/*fallback*), for a normal user's state and cache."""
    value = os.environ.get(variable, "")
    top = Path(value) if os.path.isabs(value) else Path.home() / fallback
    return top.joinpath("guestpkg", *tail)


def _default_dir(system: str, variable: str, fallback: str, *tail: str) -> Path:
    """Root's directory, or a normal user's own (sbuild's unshare mode keeps its
    state in ~/.cache/sbuild the same way)."""
    return Path(system) if os.geteuid() == 0 else _user_dir(variable, fallback, *tail)


def _nproc() -> int:
    return len(os.sched_getaffinity(0))


def _ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


BUILD = ("build", "shell")
BUILDERS = ("build", "shell", "buildroot", "cache", "rebuild")

SETTINGS: tuple[Setting, ...] = (
    # where things live
    Setting("vardir", Path, _default_dir("/var/lib/guestpkg", "XDG_STATE_HOME", ".local/state"),
            "state: buildroots, layers, forks, host state", (*BUILDERS, "status", "forget", "hook"),
            "DIR", shown_default="/var/lib/guestpkg; a normal user's: "
            "$XDG_STATE_HOME/guestpkg, ~/.local/state/guestpkg"),
    Setting("cachedir", Path, _default_dir("/var/cache/guestpkg", "XDG_CACHE_HOME", ".cache"),
            "verified downloads (content-addressed)", ("fetch", "build", "rebuild"), "DIR",
            shown_default="/var/cache/guestpkg; a normal user's: $XDG_CACHE_HOME/guestpkg, "
            "~/.cache/guestpkg"),
    Setting("logdir", Path,
            _default_dir("/var/log/guestpkg", "XDG_STATE_HOME", ".local/state", "log"),
            "logs of builds and hook runs", (), "DIR",
            shown_default="/var/log/guestpkg; a normal user's: $XDG_STATE_HOME/guestpkg/log"),
    Setting("srcdir", Path, Path("/usr/src"), "where generated guest packages are kept", (),
            "DIR"),
    Setting("hostsdir", Path, Path("/usr/share/guestpkg/hosts"),
            "where host packages install their guest's debian/ and manifest", (), "DIR"),
    Setting("recipes", Path, Path("/usr/share/guestpkg/recipes"),
            "the recipe tree (NAME/VERSION/RELEASE/ directories)", ("recipe",), "DIR"),
    Setting("recipe_mirror", str, "http://deb.debian.org/debian",
            "the Debian mirror source recipes fetch orig tarballs from ($MIRROR in their "
            "build)", ("recipe",), "URL"),
    Setting("recipe_repository", str, "recipes",
            "the trust store repository recipe results are signed into and installed from",
            ("recipe",), "NAME"),
    Setting("bootstrap_security", parse_bool, True,
            "take the suite's security updates into a new bootstrap set (no: the suite "
            "and its updates only, for a mirror whose security index is broken for an "
            "architecture)", ("recipe",), None),
    Setting("recipe_signature_lifetime", parse_seconds, 365 * 86400.0,
            "how long a signature made by recipe build --sign stays valid", ("recipe",),
            "TIME", shown_default="365d"),
    # buildhosts (docs/buildhosts.md)
    Setting("buildhosts", Path, Path("/etc/guestpkg/buildhosts"),
            "the buildhosts file: one deb822 stanza per host (Name, Architectures, Slots, "
            "Public-Key; recipe build --buildhosts [FILE])", ("buildhost",), "FILE"),
    Setting("broker", str, "",
            "the buildhosts' Redis broker: redis://HOST:PORT/DB, or rediss://... for TLS",
            ("recipe", "buildhost"), "URL"),
    Setting("broker_user", str, "guestpkg", "the broker's Redis ACL user",
            ("recipe", "buildhost"), "NAME"),
    Setting("broker_password_file", Path, Path("/etc/guestpkg/broker-password"),
            "the file holding the broker user's password (one line; never on a command "
            "line)", ("recipe", "buildhost"), "FILE"),
    Setting("broker_ca", str, "",
            "CA certificate file that a rediss:// broker's certificate must chain to "
            "(default: the system's CAs)", ("recipe", "buildhost"), "FILE"),
    Setting("broker_retry_time", parse_seconds, 60.0,
            "how long a lost broker connection is retried, with backoff, before the run "
            "fails", ("recipe", "buildhost"), "TIME"),
    Setting("broker_visibility_timeout", parse_seconds, 3600.0,
            "how long a job a buildhost took may go unacknowledged before the broker gives "
            "it to another (a host that stopped without its connection closing); longer "
            "than the longest build; 0: never", ("buildhost",), "TIME"),
    Setting("buildhost_name", str, "",
            "this buildhost's Name in the buildhosts file (default: the host name)",
            ("buildhost",), "NAME"),
    Setting("buildhost_key", Path, Path("/etc/guestpkg/buildhost.key"),
            "the secret key this buildhost signs its results with (guestpkg trust "
            "keygen)", ("buildhost",), "FILE"),
    # buildroots
    Setting("buildroot", str, "default", "name of the base buildroot", BUILDERS, "NAME"),
    Setting("suite", str, "", "suite of a new buildroot (default: this system's)",
            ("buildroot",), "SUITE"),
    Setting("arch", str, "", "architecture of a new buildroot (default: this system's)",
            ("buildroot",), "ARCH"),
    Setting("mirror", str, "", "mirror URL for a new buildroot (default: this system's "
            "Debian sources)", ("buildroot",), "URL"),
    Setting("fork_upper", parse_choice("tmpfs", "disk"), "tmpfs",
            "where a fork keeps its writes: tmpfs (fast, memory) or disk (under vardir; "
            "always for a normal user, who can't mount a tmpfs that outlives a command)",
            BUILDERS, "WHERE"),
    # the sandbox and builds
    Setting("id_mapping", parse_choice("userns", "root"), "userns",
            "ids in the sandbox: userns (a user namespace on a slice of guestpkg's "
            "subordinate ids, see subuid(5); for a normal user, on the user's own "
            "subordinate ids) or root (the host's own ids, for kernels without user "
            "namespaces or idmapped mounts; root only)", BUILDERS, "MAPPING"),
    Setting("memory_max", parse_size, _ram_bytes() * 3 // 4,
            "memory limit of each sandboxed command, in its cgroup (0: none)", BUILDERS,
            "SIZE", shown_default="3/4 of the RAM"),
    Setting("pids_max", parse_int, 16384,
            "limit of processes and threads of each sandboxed command (0: none)", BUILDERS,
            "N"),
    Setting("cpu_weight", parse_int, 50,
            "CPU weight of sandboxed commands, 1-10000 (other work has 100)", BUILDERS, "N"),
    Setting("shm_size", parse_size, 1 << 30,
            "size of the sandbox's /dev/shm (0: the kernel's, half the RAM)", BUILDERS,
            "SIZE", shown_default="1G"),
    Setting("upper_size", parse_size, 0,
            "size of a fork's tmpfs upper directory (0: the kernel's, half the RAM)",
            BUILDERS, "SIZE"),
    Setting("disk_max", parse_size, 0,
            "most a sandboxed command may write to disk: a fork's upper directory on "
            "disk and a build's tree, measured while it runs (0: no cap of its own; "
            "disk_reserve still holds)", BUILDERS, "SIZE"),
    Setting("disk_reserve", parse_size, 1 << 30,
            "free space the file systems a sandboxed command writes to must keep: a "
            "command that leaves less is stopped (0: no check)", BUILDERS, "SIZE",
            shown_default="1G"),
    Setting("min_free_space", parse_size, 2 << 30,
            "free space a build needs on the state file system before it starts (0: no "
            "check)", BUILD, "SIZE", shown_default="2G"),
    Setting("user", str, "build", "the unprivileged user builds run as", BUILD, "USER"),
    Setting("network", parse_bool, False,
            "allow network in the build phase (a logged relaxation)", BUILD, None),
    Setting("timeout", parse_seconds, 4 * 3600.0,
            "wall-clock limit of one sandboxed command (s, m, h; 0: none)", BUILD, "TIME",
            shown_default="4h"),
    Setting("jobs", parse_int, 0, "parallel jobs of a build (0: the number of CPUs)", BUILD,
            "N", shown_default="0, the number of CPUs"),
    Setting("preserve_build", parse_choice("never", "on-error", "always"), "never",
            "keep the fork after a build", ("build",), "WHEN"),
    Setting("satisfydepends_cmd", str, "",
            "external build-dependency resolver instead of the built-in one", ("build",),
            "CMD"),
    Setting("faketime", parse_bool, False,
            "freeze the clock at the last changelog entry (may break parallel builds)",
            ("build",), None),
    Setting("post_build_fail", parse_post_build_checks, "",
            "post-build checks whose failure fails the build: a comma-separated subset "
            "of lintian, piuparts and autopkgtest (sbuild's *_require_success)", ("build",),
            "CHECKS"),
    Setting("refuse_setuid", parse_bool, False,
            "refuse .debs with setuid/setgid files, devices, FIFOs, non-root owners, "
            "or paths or symlinks outside the FHS (default: warn)", ("build",), None),
    # fetching
    Setting("download_timeout", parse_seconds, 60.0, "socket timeout of a download",
            ("fetch", "upstream-check"), "TIME"),
    Setting("download_retries", parse_int, 3, "retries of a failed download",
            ("fetch", "upstream-check"), "N"),
    Setting("download_deadline", parse_seconds, 3600.0,
            "longest a whole fetch may take, discovery, retries and downloads together "
            "(0: none)", ("fetch", "upstream-check"), "TIME", shown_default="1h"),
    Setting("download_min_rate", parse_size, 1024,
            "slowest transfer accepted, in bytes/s over twice download_timeout "
            "(0: any)", ("fetch", "upstream-check"), "SIZE", shown_default="1K"),
    Setting("max_download_size", parse_size, 4 << 30, "largest download accepted",
            ("fetch",), "SIZE", shown_default="4G"),
    # trust
    Setting("trustdir", Path, Path("/etc/guestpkg/trust.d"),
            "keys and signature archives", ("trust", "dcfpkg"), "DIR"),
    Setting("trust_policy", str, "trusted:1 | senior:1 | junior:2",
            "signatures a package needs: alternatives of level:count terms (see dcfpkg(5))",
            ("trust",), "POLICY"),
    Setting("trust_promotion_time", parse_seconds, 30 * 86400.0,
            "time a junior key signs a package before it counts as senior for it",
            ("trust",), "TIME"),
    Setting("trust_max_archive_size", parse_size, 1 << 20,
            "largest signature archive accepted", ("trust",), "SIZE"),
    Setting("trust_max_entries", parse_int, 10_000,
            "most signatures in one archive", ("trust",), "N"),
    # dcfpkg packages
    Setting("dcfpkg_level", parse_int, 3, "zstd level of new dcfpkg packages", ("dcfpkg",),
            "N"),
    Setting("dcfpkg_max_size", parse_size, 64 << 30,
            "largest total file size a dcfpkg may unpack to", ("dcfpkg",), "SIZE"),
    Setting("dcfpkg_max_entries", parse_int, 1_000_000, "most entries a dcfpkg may have",
            ("dcfpkg",), "N"),
    Setting("dcfpkg_allow_setuid", parse_bool, False,
            "accept setuid and setgid files in dcfpkg packages", ("dcfpkg",), None),
    # host packages
    Setting("retry_delay", parse_seconds, 3600.0,
            "wait after a host's first failed build; doubled per failure, at most a day",
            (), "TIME"),
    Setting("permanent_failure_after", parse_seconds, 3 * 86400.0,
            "stop retrying a host that has failed for this long (guestpkg rebuild resumes)",
            (), "TIME"),
)

SETTING_BY_NAME = {s.name: s for s in SETTINGS}


class SandboxLimits(TypedDict):
    """Keyword arguments of SandboxSpec (guestpkg.sandbox.spec) for resource limits."""

    memory_max_bytes: int | None
    pids_max: int | None
    cpu_weight: int | None
    shm_size_bytes: int | None
    disk_max_bytes: int | None
    disk_reserve_bytes: int | None


@dataclass(frozen=True)
class Config:
    """The resolved settings; passed explicitly, never global."""

    vardir: Path
    cachedir: Path
    logdir: Path
    srcdir: Path
    hostsdir: Path
    recipes: Path
    recipe_mirror: str
    recipe_repository: str
    bootstrap_security: bool
    recipe_signature_lifetime: float
    buildhosts: Path
    broker: str
    broker_user: str
    broker_password_file: Path
    broker_ca: str
    broker_retry_time: float
    broker_visibility_timeout: float
    buildhost_name: str
    buildhost_key: Path
    buildroot: str
    suite: str
    arch: str
    mirror: str
    fork_upper: str
    id_mapping: str
    memory_max: int
    pids_max: int
    cpu_weight: int
    shm_size: int
    upper_size: int
    disk_max: int
    disk_reserve: int
    min_free_space: int
    user: str
    network: bool
    timeout: float
    jobs: int
    preserve_build: str
    satisfydepends_cmd: str
    faketime: bool
    post_build_fail: str
    refuse_setuid: bool
    download_timeout: float
    download_retries: int
    download_deadline: float
    download_min_rate: int
    max_download_size: int
    trustdir: Path
    trust_policy: str
    trust_promotion_time: float
    trust_max_archive_size: int
    trust_max_entries: int
    dcfpkg_level: int
    dcfpkg_max_size: int
    dcfpkg_max_entries: int
    dcfpkg_allow_setuid: bool
    retry_delay: float
    permanent_failure_after: float

    @property
    def build_jobs(self) -> int:
        return self.jobs or _nproc()

    @property
    def timeout_s(self) -> float | None:
        return self.timeout or None

    @property
    def sandbox_limits(self) -> SandboxLimits:
        """The resource fields of a SandboxSpec, from these settings (0: none)."""
        return {"memory_max_bytes": self.memory_max or None, "pids_max": self.pids_max or None,
                "cpu_weight": self.cpu_weight or None, "shm_size_bytes": self.shm_size or None,
                "disk_max_bytes": self.disk_max or None,
                "disk_reserve_bytes": self.disk_reserve or None}

    @classmethod
    def defaults(cls, **overrides: Any) -> Config:
        """The built-in defaults, with *overrides*: for tests and library callers."""
        values = {s.name: s.default for s in SETTINGS}
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def confdir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("GUESTPKG_CONFDIR", DEFAULT_CONFDIR))


def config_files(directory: Path) -> list[Path]:
    """guestpkg.conf first, then the .conf.d snippets in name order: later wins."""
    files = [directory / "guestpkg.conf"]
    snippets = directory / "guestpkg.conf.d"
    if snippets.is_dir():
        files += sorted(p for p in snippets.iterdir() if p.name.endswith(".conf"))
    return [f for f in files if f.is_file()]


def read_config_file(path: Path) -> dict[str, str]:
    """``key = value`` lines; unknown keys are errors, so typos don't go unnoticed."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        name = key.strip().replace("-", "_").lower()
        if not sep:
            raise ConfigError(f"{path}:{lineno}: expected 'key = value', got {raw!r}")
        if name not in SETTING_BY_NAME:
            raise ConfigError(f"{path}:{lineno}: unknown setting {key.strip()!r}",
                              hint="see guestpkg.conf(5) for the settings")
        values[name] = value.strip().strip('"')
    return values


def _parse(setting: Setting, text: str, origin: str) -> Any:
    try:
        return setting.parse(text)
    except ValueError as e:
        raise ConfigError(f"{origin}: bad value for {setting.name}: {e}") from e


def load(
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> Config:
    """Resolve every setting: *cli* (already parsed, ``None`` = not given) >
    *environ* > config files in *directory* > defaults."""
    environ = os.environ if environ is None else environ
    directory = confdir(environ) if directory is None else directory
    from_files: dict[str, tuple[str, str]] = {}
    for path in config_files(directory):
        for name, text in read_config_file(path).items():
            from_files[name] = (text, str(path))

    values: dict[str, Any] = {}
    for s in SETTINGS:
        if cli is not None and cli.get(s.name) is not None:
            values[s.name] = cli[s.name]
        elif s.env_var in environ:
            values[s.name] = _parse(s, environ[s.env_var], s.env_var)
        elif s.name in from_files:
            text, origin = from_files[s.name]
            values[s.name] = _parse(s, text, origin)
        else:
            values[s.name] = s.default
    return Config(**values)


def add_options(parser: argparse.ArgumentParser, command: str, default: Any = None) -> None:
    """Add the options of every setting that *command* offers.  A command with actions
    (``guestpkg recipe lint``) adds them again to each action's parser with *default*
    ``argparse.SUPPRESS``, so they work after the action and don't reset the value
    given before it."""
    for s in SETTINGS:
        if command not in s.commands:
            continue
        help_text = f"{s.help} (default: {show_default(s)}; env {s.env_var})"
        if s.parse is parse_bool:
            parser.add_argument(s.option, dest=s.name, action=argparse.BooleanOptionalAction,
                                default=default, help=help_text)
        else:
            parser.add_argument(s.option, dest=s.name, type=_argparse_type(s),
                                default=default, metavar=s.metavar, help=help_text)


def show_default(s: Setting) -> str:
    """The default as a user reads it, in --help and in guestpkg.conf(5)."""
    if s.shown_default is not None:
        return s.shown_default
    if s.parse is parse_bool:
        return "yes" if s.default else "no"
    return str(s.default) if s.default not in ("", None) else "none"


def _argparse_type(s: Setting) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return s.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
    convert.__name__ = s.metavar or s.name
    return convert


def cli_values(namespace: argparse.Namespace, names: Sequence[str] | None = None) -> dict[str, Any]:
    names = names or [s.name for s in SETTINGS]
    return {n: getattr(namespace, n, None) for n in names}
