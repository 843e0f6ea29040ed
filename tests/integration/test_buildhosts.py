# SPDX-License-Identifier: GPL-2.0-or-later
"""Buildhosts: a real redis-server with an ACL password, and buildhosts as separate
``guestpkg buildhost serve`` processes, each in its own network namespace joined to a
test bridge by a veth pair (tests/support/netlab.py: pyroute2, a private subnet inside
namespaces this test makes); the coordinator runs in one more namespace.  Each
buildhost has its own state and log directories; they share this machine's bootstrap
sets, which every buildhost would have made with ``guestpkg recipe bootstrap``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis import Redis

from guestpkg.config import Config
from guestpkg.recipe.bootstrap import BootstrapSet
from guestpkg.recipe.tree import load_tree
from tests.support.examples import ExampleBuild
from tests.support.netlab import Lab, lab
from tests.support.recipemirror import example_mirror
from tests.support.recipetree import write_recipe

PASSWORD = "bh-test-password-7c1e"
TOOL_C = b'#include <bh.h>\n#include <stdio.h>\nint main(void) ' \
         b'{ printf("%d\\n", bh_answer()); return 0; }\n'


def sh(script: str) -> bytes:
    return b"#!/bin/sh\nset -eu\n" + script.encode()


def example_tree(root: Path, slow: int = 0) -> Path:
    """Three wide and three deep: bhlib <- bhtool <- bhapp, with bhdata and bhdoc
    beside them; both architectures.  *slow* makes bhtool take that many seconds."""
    write_recipe(root, "bhlib/1.0/1", build=sh("""
mkdir -p "$DESTDIR/usr/include" "$DESTDIR/usr/lib"
printf 'int bh_answer(void);\\n' > "$DESTDIR/usr/include/bh.h"
printf 'int bh_answer(void) { return 42; }\\n' > bh.c
cc $CFLAGS -c bh.c -o bh.o && ar rcs "$DESTDIR/usr/lib/libbh.a" bh.o
"""))
    write_recipe(root, "bhtool/1.0/1", builddeps="bhlib\n", extra={"t.c": TOOL_C},
                 build=sh(f"""
sleep {slow}
cc $CFLAGS -o bhtool t.c -lbh
install -D -m755 bhtool "$DESTDIR/usr/bin/bhtool"
"""))
    write_recipe(root, "bhapp/1.0/1", builddeps="bhtool\n", build=sh("""
mkdir -p "$DESTDIR/usr/share/bhapp"
bhtool > "$DESTDIR/usr/share/bhapp/answer"
uname -m > "$DESTDIR/usr/share/bhapp/machine"
"""))
    write_recipe(root, "bhdata/1.0/1", build=sh("""
mkdir -p "$DESTDIR/usr/share/bhdata" && echo data > "$DESTDIR/usr/share/bhdata/d"
"""))
    write_recipe(root, "bhdoc/1.0/1", build=sh("""
mkdir -p "$DESTDIR/usr/share/doc/bhdoc" && echo doc > "$DESTDIR/usr/share/doc/bhdoc/README"
"""))
    return root


@dataclass
class Cluster:
    """The broker, the buildhosts and the coordinator's settings, in the lab."""

    lab: Lab
    root: Path
    port: int
    redis: subprocess.Popen[bytes]
    tls: bool = False
    hosts: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    arches: dict[str, str] = field(default_factory=dict)

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    def env(self, **extra: str) -> dict[str, str]:
        scheme = "rediss" if self.tls else "redis"
        ca = {"GUESTPKG_BROKER_CA": str(self.root / "tls" / "ca.crt")} if self.tls else {}
        return {**os.environ, **ca, "GUESTPKG_CONFDIR": str(self.etc),
                "GUESTPKG_BROKER": f"{scheme}://{self.lab.hub_address}:{self.port}/0",
                "GUESTPKG_BROKER_PASSWORD_FILE": str(self.etc / "broker-password"),
                "GUESTPKG_BUILDHOSTS": str(self.etc / "buildhosts"),
                "GUESTPKG_TRUSTDIR": str(self.etc / "trust.d"),
                "GUESTPKG_BROKER_RETRY_TIME": "10", **extra}

    def guestpkg(self, *args: str, **env: str) -> list[str]:
        return [sys.executable, "-m", "guestpkg", *args]

    def start_host(self, name: str, bootstrap_cache: Path, key: str | None = None,
                   verbose: bool = False, **extra: str) -> None:
        state = self.root / name
        state.mkdir(exist_ok=True)
        env = self.env(**extra, GUESTPKG_CACHEDIR=str(bootstrap_cache),
                       GUESTPKG_VARDIR=str(state / "var"), GUESTPKG_LOGDIR=str(state / "log"),
                       GUESTPKG_BUILDHOST_NAME=name,
                       GUESTPKG_BUILDHOST_KEY=str(self.etc / f"{key or name}.key"))
        with open(state / "serve.out", "ab") as out:
            serve = ["-v"] * verbose + ["buildhost", "serve"]
            self.hosts[name] = self.lab.popen(name, self.guestpkg(*serve),
                                              env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_serving(self, names: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run_coordinator(["buildhost", "status"], check=True).stdout
            seen = [n for n in names if re.search(rf"^{n} .*last seen \d+ s ago", out, re.M)]
            if seen == names:
                return
            for name in names:
                if self.hosts[name].poll() is not None:
                    raise AssertionError((self.root / name / "serve.out").read_text())
            time.sleep(1)
        raise AssertionError(f"buildhosts not serving: {out}")

    def run_coordinator(self, args: list[str], check: bool = False, timeout: float = 900,
                        **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.lab.command("coord", self.guestpkg(*args)),
                                env=self.env(**env), capture_output=True, text=True,
                                timeout=timeout)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def start_coordinator(self, env: dict[str, str], *recipes: str
                          ) -> subprocess.Popen[str]:
        """``guestpkg recipe build --buildhosts -j 0 --arch x86_64 RECIPES`` in the
        background, in a session of its own (for signals), stdout and stderr in one pipe."""
        return subprocess.Popen(
            self.lab.command("coord", self.guestpkg("recipe", "build", "--buildhosts", "-j",
                                                    "0", "--arch", "x86_64", *recipes)),
            env=self.env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)

    def redis_client(self) -> Redis[bytes]:
        """This test's own client of the broker (from a namespace of the lab)."""
        return Redis(host=self.lab.hub_address, port=self.port, username="guestpkg",
                           password=PASSWORD, socket_timeout=10)

    def stop(self) -> None:
        for proc in [*self.hosts.values(), self.redis]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(etc: Path, name: str, level: str | None) -> None:
    env = {**os.environ, "GUESTPKG_TRUSTDIR": str(etc / "trust.d"),
           "GUESTPKG_CONFDIR": str(etc)}
    subprocess.run([sys.executable, "-m", "guestpkg", "trust", "keygen", str(etc / name)],
                   env=env, check=True, capture_output=True)
    if level:
        subprocess.run([sys.executable, "-m", "guestpkg", "trust", "add-key",
                        str(etc / f"{name}.pub"), level], env=env, check=True,
                       capture_output=True)


def certificates(directory: Path, address: str) -> str:
    """A test CA and a server certificate for *address* (openssl); redis.conf lines."""
    directory.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=guestpkg test CA")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj",
            f"/CN={address}")
    (directory / "ext").write_text(f"subjectAltName=IP:{address}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext")
    return (f"tls-cert-file {directory}/server.crt\ntls-key-file {directory}/server.key\n"
            f"tls-ca-cert-file {directory}/ca.crt\ntls-auth-clients no\n")


@contextlib.contextmanager
def cluster(root: Path, hosts: dict[str, str], tls: bool = False) -> Iterator[Cluster]:
    """A redis-server (ACL user guestpkg with a password, the default user off) on the
    hub's bridge address (*tls*: only over TLS, with a test CA), a namespace per
    buildhost of *hosts* (name -> arches) and one for the coordinator; keys listed in
    the buildhosts file and trusted."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "broker-password").write_text(PASSWORD + "\n")
    (etc / "broker-password").chmod(0o600)
    stanzas = []
    for name, arches in hosts.items():
        keygen(etc, name, "trusted")
        stanzas.append(f"Name: {name}\nArchitectures: {arches}\nSlots: 1\n"
                       f"Public-Key: {name}.pub\n")
    (etc / "buildhosts").write_text("\n".join(stanzas))
    with lab() as the_lab:
        for name in [*hosts, "coord"]:
            the_lab.add(name)
        port = free_port()
        listen = (f"port 0\ntls-port {port}\n"
                  + certificates(root / "tls", the_lab.hub_address)) if tls else f"port {port}\n"
        (root / "redis.conf").write_text(
            f"bind {the_lab.hub_address}\n{listen}save \"\"\nappendonly no\n"
            f"dir {root}\nuser default off\n"
            f"user guestpkg on >{PASSWORD} ~* &* +@all\n")
        with open(root / "redis.log", "wb") as out:
            redis = the_lab.popen("hub", ["redis-server", str(root / "redis.conf")],
                                  stdout=out, stderr=subprocess.STDOUT)
        the = Cluster(the_lab, root, port, redis, tls, arches=hosts)
        try:
            yield the
        finally:
            the.stop()


def cache_with(root: Path, sets: Path) -> Path:
    """A cache directory of its own that has this machine's bootstrap sets."""
    (root / "dcfpkg").mkdir(parents=True)
    (root / "dcfpkg" / "bootstrap").symlink_to(sets)
    return root


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.glob("*.dcfpkg"))}


def built_on(log: Path) -> str:
    match = re.search(r"^guestpkg: built on buildhost (\S+) ", log.read_text(), re.M)
    assert match, log.read_text()[-2000:]
    return match.group(1)


@pytest.fixture
def sets(test_config: Config, bootstrap_x86_64: BootstrapSet,
         bootstrap_i586: BootstrapSet) -> Path:
    return test_config.cachedir / "dcfpkg" / "bootstrap"


def test_the_example_set_builds_across_three_buildhosts_as_a_local_build(
        tmp_path: Path, sets: Path, test_config: Config, example_set: ExampleBuild) -> None:
    """The project's recipes/ (whatever it holds, source recipes too) from nothing on
    two x86_64 hosts and an i586 one: every job on a host of its architecture, the
    results byte for byte those of the session's local build (tests/support/examples).

    The orig tarballs are served on the lab's hub, where a buildhost's source recipes
    reach them through slirp4netns as they would reach a mirror on their network; the
    rule that a source recipe never reaches its host's 127.0.0.1 is unchanged."""
    hosts = {"bx1": "x86_64", "bx2": "x86_64", "bi1": "i586"}
    with contextlib.ExitStack() as stack:
        c = stack.enter_context(cluster(tmp_path / "cluster", hosts))
        with c.lab.inside("hub"):   # the server's socket and thread live in the hub
            mirror = stack.enter_context(example_mirror(tmp_path / "mirror",
                                                        host=c.lab.hub_address))
        for name in hosts:
            c.start_host(name, test_config.cachedir, GUESTPKG_RECIPE_MIRROR=mirror.url)
        c.wait_serving(list(hosts))
        coord_cache = cache_with(tmp_path / "coord-cache", sets)
        for arch, count in example_set.counts.items():
            done = c.run_coordinator(
                ["recipe", "build", "--buildhosts", "-j", "0", "--arch", arch], check=True,
                GUESTPKG_RECIPES=str(example_set.tree), GUESTPKG_CACHEDIR=str(coord_cache),
                GUESTPKG_VARDIR=str(test_config.vardir),
                GUESTPKG_LOGDIR=str(tmp_path / "coord-log"))
            assert done.stdout.splitlines()[-1] == example_set.summaries[arch] == \
                f"built {count}, cached 0, failed 0, skipped 0", done.stdout
        status = c.run_coordinator(["buildhost", "status"], check=True).stdout
    logs = sorted((tmp_path / "coord-log" / "recipes").glob("*.log"))
    assert len(logs) == sum(example_set.counts.values())
    for log in logs:
        arch = "i586" if log.name.endswith("_i386.log") else "x86_64"
        assert hosts[built_on(log)] == arch, log.name
    assert {built_on(log) for log in logs if log.name.endswith("_amd64.log")} \
        == {"bx1", "bx2"}, "both x86_64 hosts took jobs"
    assert re.search(r"^bi1 +i586 +slots 0/1 +last seen \d+ s ago", status, re.M), status
    assert not list((coord_cache / "dcfpkg").glob(".tmp-*"))
    assert digests(coord_cache / "dcfpkg") == example_set.digests()
    assert len(example_set.digests()) == len(logs)
    # every source build fetched from the hub (it can reach nothing else)
    sources = sum(len(r.arches) for r in load_tree(example_set.tree).recipes
                  if r.type == "source")
    assert sources and sum(mirror.hits.values()) >= sources, mirror.hits


@pytest.fixture
def x86_sets(test_config: Config, bootstrap_x86_64: BootstrapSet) -> Path:
    return test_config.cachedir / "dcfpkg" / "bootstrap"


def coordinator_env(tmp_path: Path, tree: Path, cache: Path, test_config: Config
                    ) -> dict[str, str]:
    return {"GUESTPKG_RECIPES": str(tree), "GUESTPKG_CACHEDIR": str(cache),
            "GUESTPKG_VARDIR": str(test_config.vardir),
            "GUESTPKG_LOGDIR": str(tmp_path / "coord-log")}


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_buildhost_killed_mid_build_loses_its_job_to_another(
        tmp_path: Path, x86_sets: Path, test_config: Config) -> None:
    tree = example_tree(tmp_path / "tree", slow=20)
    hosts = {"bx1": "x86_64", "bx2": "x86_64"}
    with cluster(tmp_path / "cluster", hosts) as c:
        for name in hosts:
            c.start_host(name, test_config.cachedir)
        c.wait_serving(list(hosts))
        cache = cache_with(tmp_path / "coord-cache", x86_sets)
        coordinator = c.start_coordinator(coordinator_env(tmp_path, tree, cache, test_config))
        holder: list[str] = []

        def bhtool_running() -> bool:
            out = c.run_coordinator(["buildhost", "status"], check=True).stdout
            for name in hosts:
                if re.search(rf"^{name} .*\n(    .*\n)*    bhtool/1\.0/1 \(x86_64\)", out, re.M):
                    holder.append(name)
                    return True
            return False

        wait_for(bhtool_running, 300, "bhtool to start building")
        time.sleep(3)   # well inside its 20 s build
        victim = holder[0]
        os.killpg(c.hosts[victim].pid, signal.SIGKILL)
        c.hosts[victim].wait()
        out, _ = coordinator.communicate(timeout=600)
        assert coordinator.returncode == 0, out
        # the killed host left its job's directory and its build's work tree; when it
        # serves again it removes both
        var = tmp_path / "cluster" / victim / "var"
        trees = sorted((var / "recipes" / "builds").glob(".tmp-bhtool.*"))
        jobs = list((var / "buildhost" / victim / "jobs").iterdir())
        assert [t.suffix for t in trees] == [trees[0].suffix, ".lock"] and jobs, trees
        left = [*trees, *jobs]
        serve_out = tmp_path / "cluster" / victim / "serve.out"
        c.start_host(victim, test_config.cachedir)
        wait_for(lambda: serve_out.read_text().count(f"buildhost {victim}: serving") == 2,
                 60, f"{victim} to serve again")
        assert not any(os.path.lexists(p) for p in left), serve_out.read_text()
    assert f"lost     bhtool/1.0/1 (x86_64) on {victim}: sent again" in out, out
    assert "built 5, cached 0, failed 0, skipped 0" in out, out
    survivor = next(n for n in hosts if n != victim)
    assert built_on(tmp_path / "coord-log" / "recipes" / "bhtool_1.0-1_amd64.log") == survivor
    assert built_on(tmp_path / "coord-log" / "recipes" / "bhapp_1.0-1_amd64.log") == survivor
    assert not list((cache / "dcfpkg").glob(".tmp-*"))
    assert len(digests(cache / "dcfpkg")) == 5
    for name in hosts:  # nothing of a job is left in a host's cache
        assert not list((tmp_path / "cluster" / name).rglob("*.dcfpkg.*"))


def test_a_stopped_buildhost_loses_its_job_once_and_its_late_result_is_not_used(
        tmp_path: Path, x86_sets: Path, test_config: Config) -> None:
    """SIGSTOP: a host that hangs with its broker connection open, so nothing tells the
    broker.  The broker's visibility timeout (8 s here) puts the stopped host's
    unacknowledged message back, found by bx2 when it starts; and when bx1's lease
    lapses the coordinator sends the job again, unless bx2 took the lease first.  Of
    these deliveries one more builds (on bx2), and the others find the job done.  bx1,
    resumed while bx2 builds, has lost its lease: whichever of the two finishes second
    has its result refused by the job's first, which the coordinator accepted, once."""
    tree = tmp_path / "tree"
    write_recipe(tree, "slowa/1/1", arch="x86_64\n", build=sh("""
sleep 25
mkdir -p "$DESTDIR/usr/share/slowa" && echo x > "$DESTDIR/usr/share/slowa/x"
"""))
    hosts = {"bx1": "x86_64", "bx2": "x86_64"}
    short = {"GUESTPKG_BROKER_VISIBILITY_TIMEOUT": "8"}
    with cluster(tmp_path / "cluster", hosts) as c:
        c.start_host("bx1", test_config.cachedir, verbose=True, **short)
        c.wait_serving(["bx1"])
        cache = cache_with(tmp_path / "coord-cache", x86_sets)
        coordinator = c.start_coordinator(coordinator_env(tmp_path, tree, cache, test_config))
        assert coordinator.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(coordinator.stdout or ()),
                                  daemon=True)
        reader.start()

        def running_on(name: str) -> bool:
            out = c.run_coordinator(["buildhost", "status"], check=True).stdout
            return re.search(rf"^{name} .*\n    slowa/1/1 \(x86_64\)", out, re.M) is not None

        wait_for(lambda: running_on("bx1"), 120, "bx1 to build slowa")
        time.sleep(2)
        os.killpg(c.hosts["bx1"].pid, signal.SIGSTOP)
        time.sleep(7)   # bx1 took the job more than the visibility timeout ago
        c.start_host("bx2", test_config.cachedir, verbose=True, **short)
        wait_for(lambda: running_on("bx2"), 120, "bx2 to build slowa")
        os.killpg(c.hosts["bx1"].pid, signal.SIGCONT)
        assert coordinator.wait(timeout=300) == 0, "".join(lines)
        reader.join()
        out = "".join(lines)
        assert "built 1, cached 0, failed 0, skipped 0" in out, out
        resent = out.count("lost     slowa/1/1 (x86_64) on bx1: sent again\n")
        assert resent <= 1, out
        # deliveries: bx1's, the coordinator's (if any), one by the visibility timeout
        deliveries = 2 + resent

        def serve_out() -> str:
            return "".join((tmp_path / "cluster" / n / "serve.out").read_text() for n in hosts)

        def settled() -> bool:
            logs = serve_out()
            return ("this result is not used" in logs
                    and len(re.findall(r"build_recipe\[\w+\] received", logs)) == deliveries
                    and logs.count(": already done on") == deliveries - 2)

        wait_for(settled, 120, "the late build to end and every copy to be taken")
        logs = serve_out()
        job_id = re.findall(r"job ([0-9a-f]{32}): building slowa/1/1", logs)
        with c.lab.inside("coord"):
            stored = c.redis_client().get(f"guestpkg:done:{job_id[0]}")
    assert len(job_id) == 2 and job_id[0] == job_id[1], logs      # built twice, not thrice
    assert logs.count(f"guestpkg.build_recipe[{job_id[0]}] received") == deliveries, logs
    assert logs.count(f"job {job_id[0]}: already done on") == deliveries - 2, logs
    assert logs.count("this result is not used") == 1, logs
    winner = built_on(tmp_path / "coord-log" / "recipes" / "slowa_1-1_amd64.log")
    loser = next(n for n in hosts if n != winner)
    assert "this result is not used" in \
        (tmp_path / "cluster" / loser / "serve.out").read_text(), logs
    assert "lost its lease" in (tmp_path / "cluster" / "bx1" / "serve.out").read_text()
    assert stored is not None and json.loads(stored)["host"] == winner, \
        "the job's stored result is not the one the coordinator accepted"
    assert len(digests(cache / "dcfpkg")) == 1 and not list((cache / "dcfpkg").glob(".tmp-*"))


def test_a_result_signed_by_an_unlisted_key_is_refused(
        tmp_path: Path, x86_sets: Path, test_config: Config) -> None:
    """bx1 signs with a key of its own, trusted in the store but not the one the
    coordinator's buildhosts file lists for bx1: refused, nothing in the cache."""
    tree = example_tree(tmp_path / "tree")
    with cluster(tmp_path / "cluster", {"bx1": "x86_64"}) as c:
        keygen(c.etc, "rogue", "trusted")
        rogue_hosts = c.etc / "rogue-buildhosts"
        rogue_hosts.write_text("Name: bx1\nArchitectures: x86_64\nSlots: 1\n"
                               "Public-Key: rogue.pub\n")
        state = c.root / "bx1"
        state.mkdir()
        with open(state / "serve.out", "wb") as out:
            c.hosts["bx1"] = c.lab.popen("bx1", c.guestpkg("buildhost", "serve"), env=c.env(
                GUESTPKG_CACHEDIR=str(test_config.cachedir),
                GUESTPKG_VARDIR=str(state / "var"), GUESTPKG_LOGDIR=str(state / "log"),
                GUESTPKG_BUILDHOST_NAME="bx1", GUESTPKG_BUILDHOSTS=str(rogue_hosts),
                GUESTPKG_BUILDHOST_KEY=str(c.etc / "rogue.key")),
                stdout=out, stderr=subprocess.STDOUT)
        c.wait_serving(["bx1"])
        cache = cache_with(tmp_path / "coord-cache", x86_sets)
        done = c.run_coordinator(["recipe", "build", "--buildhosts", "-j", "0", "--arch",
                                  "x86_64", "bhlib"],
                                 **coordinator_env(tmp_path, tree, cache, test_config))
    assert done.returncode != 0
    assert re.search(r"signed by key [0-9a-f]{16}, not by the key [0-9a-f]{16} that "
                     r"\S+/buildhosts lists for bx1; refused", done.stdout + done.stderr), \
        done.stdout + done.stderr
    assert digests(cache / "dcfpkg") == {} and not list((cache / "dcfpkg").glob(".tmp-*"))


def test_a_buildhost_key_the_trust_policy_does_not_accept_is_refused(
        tmp_path: Path, x86_sets: Path, test_config: Config) -> None:
    """Listed in buildhosts, but only junior in the trust store (the policy needs one
    senior or two junior keys): refused."""
    tree = example_tree(tmp_path / "tree")
    with cluster(tmp_path / "cluster", {"bx1": "x86_64"}) as c:
        subprocess.run([sys.executable, "-m", "guestpkg", "trust", "demote",
                        "--", _key_id(c.etc / "bx1.pub"), "junior"], env=c.env(),
                       check=True, capture_output=True)
        c.start_host("bx1", test_config.cachedir)
        c.wait_serving(["bx1"])
        cache = cache_with(tmp_path / "coord-cache", x86_sets)
        done = c.run_coordinator(["recipe", "build", "--buildhosts", "-j", "0", "--arch",
                                  "x86_64", "bhlib"],
                                 **coordinator_env(tmp_path, tree, cache, test_config))
    assert done.returncode != 0
    assert "don't meet the policy" in done.stdout + done.stderr, done.stdout + done.stderr
    assert digests(cache / "dcfpkg") == {}


def _key_id(pub: Path) -> str:
    match = re.search(r"^Key-Id: ([0-9a-f]{16})$", pub.read_text(), re.M)
    assert match
    return match.group(1)


def test_a_tampered_or_irreproducible_result_is_refused(tmp_path: Path, x86_sets: Path,
                                      test_config: Config) -> None:
    """A real buildhost builds bhlib; the result's blob on the broker is then changed
    (same digest name, other bytes; or other bytes under their own digest with the
    host's signature kept): each is refused, as are a forged key, a host not listed and
    a second host's other bytes for the same cache key; nothing reaches the cache."""
    import base64

    from guestpkg.build.schedule import plan_build
    from guestpkg.buildhost.blobs import put_bytes
    from guestpkg.buildhost.coordinator import Coordinator
    from guestpkg.config import load
    from guestpkg.errors import GuestpkgError
    from guestpkg.recipe import graph as rgraph
    from guestpkg.recipe.bootstrap import open_set
    from guestpkg.recipe.tree import load_tree

    tree_dir = example_tree(tmp_path / "tree")
    with cluster(tmp_path / "cluster", {"bx1": "x86_64"}) as c:
        c.start_host("bx1", test_config.cachedir)
        c.wait_serving(["bx1"])
        cache = cache_with(tmp_path / "coord-cache", x86_sets)
        # this process is the coordinator: it joins the lab's coordinator namespace
        with c.lab.inside("coord"):
            env = c.env(**coordinator_env(tmp_path, tree_dir, cache, test_config))
            config = load({}, environ={k: v for k, v in env.items()
                                       if k.startswith("GUESTPKG_")})
            tree = load_tree(tree_dir)
            graph = rgraph.resolve(tree, "x86_64", [tree.find("bhlib")])
            node = graph.nodes[graph.requested[0]]
            ctx = plan_build(config, graph, node, open_set(config, "x86_64"), {}, 1)
            coordinator = Coordinator(config, 0)
            job = coordinator.send(ctx)
            honest = coordinator.wait(job, ctx)
            blob = coordinator.redis.get(f"guestpkg:blob:{honest['sha256']}:0")
            assert blob is not None
            flipped = blob[:-1] + bytes([blob[-1] ^ 1])
            other = put_bytes(coordinator.redis, flipped)
            coordinator.redis.set(f"guestpkg:blob:{honest['sha256']}:0", flipped)
            with pytest.raises(GuestpkgError, match="expected .* SHA256 " + honest["sha256"]):
                coordinator.accept(job, ctx, honest)
            with pytest.raises(GuestpkgError, match="signature does not verify"):
                coordinator.accept(job, ctx, {**honest, "sha256": other})
            forged = {**honest, "public_key": base64.b64encode(b"\0" * 32).decode()}
            with pytest.raises(GuestpkgError, match="not by the key"):
                coordinator.accept(job, ctx, forged)
            with pytest.raises(GuestpkgError, match="not in"):
                coordinator.accept(job, ctx, {**honest, "host": "bx9"})
            # two hosts that built the same key into other bytes: neither is accepted
            coordinator.check_reproducible(job, "bx1", honest["sha256"])
            with pytest.raises(GuestpkgError, match="reproducibility failure: bhlib/1.0/1 "
                               rf"\(x86_64\) .* by bx2 as {other} and differently by bx1"):
                coordinator.check_reproducible(job, "bx2", other)
    assert digests(cache / "dcfpkg") == {} and not list((cache / "dcfpkg").glob(".tmp-*"))


def test_the_broker_stopped_mid_run_fails_clearly_and_keeps_verified_results(
        tmp_path: Path, x86_sets: Path, test_config: Config) -> None:
    tree = example_tree(tmp_path / "tree", slow=30)
    with cluster(tmp_path / "cluster", {"bx1": "x86_64"}) as c:
        c.start_host("bx1", test_config.cachedir)
        c.wait_serving(["bx1"])
        cache = cache_with(tmp_path / "coord-cache", x86_sets)
        coordinator = c.start_coordinator(coordinator_env(tmp_path, tree, cache, test_config),
                                          "bhapp")
        wait_for(lambda: (cache / "dcfpkg" / "bhlib_1.0-1_amd64.dcfpkg").exists(), 300,
                 "bhlib to be accepted")
        os.killpg(c.redis.pid, signal.SIGKILL)
        c.redis.wait()
        stopped = time.monotonic()
        out, _ = coordinator.communicate(timeout=120)
        waited = time.monotonic() - stopped
    assert coordinator.returncode == 4, out
    assert f"guestpkg: error: lost the broker redis://{c.lab.hub_address}:{c.port}/0 while" \
        in out, out
    assert PASSWORD not in out
    assert waited < 60, f"{waited:.0f} s: broker-retry-time is 10 s"
    assert list(digests(cache / "dcfpkg")) == ["bhlib_1.0-1_amd64.dcfpkg"]
    assert not list((cache / "dcfpkg").glob(".tmp-*"))


def test_cancelling_the_coordinator_revokes_its_queued_jobs(
        tmp_path: Path, x86_sets: Path, test_config: Config) -> None:
    """Two hosts listed, one serving: the coordinator queues two leaves, bx1 takes one,
    the other waits in the queue.  SIGINT: exit 130; bx2, started afterwards, builds
    nothing of that run."""
    tree = tmp_path / "tree"
    for name in ("slowa", "slowb"):
        write_recipe(tree, f"{name}/1/1", arch="x86_64\n", build=sh(f"""
sleep 15
mkdir -p "$DESTDIR/usr/share/{name}" && echo x > "$DESTDIR/usr/share/{name}/x"
"""))
    hosts = {"bx1": "x86_64", "bx2": "x86_64"}
    with cluster(tmp_path / "cluster", hosts) as c:
        c.start_host("bx1", test_config.cachedir)
        c.wait_serving(["bx1"])
        cache = cache_with(tmp_path / "coord-cache", x86_sets)
        coordinator = c.start_coordinator(coordinator_env(tmp_path, tree, cache, test_config))

        def one_running() -> bool:
            out = c.run_coordinator(["buildhost", "status"], check=True).stdout
            return "slots 1/1" in out

        wait_for(one_running, 120, "bx1 to take a job")
        os.killpg(coordinator.pid, signal.SIGINT)
        out, _ = coordinator.communicate(timeout=120)
        assert coordinator.returncode == 130, out
        c.start_host("bx2", test_config.cachedir)
        c.wait_serving(["bx2"])
        time.sleep(20)   # bx1's build ends; bx2 would have taken the queued job by now
        status = c.run_coordinator(["buildhost", "status"], check=True).stdout
    assert re.search(r"^bx2 .*slots 0/1", status, re.M), status
    assert not (tmp_path / "cluster" / "bx2" / "log" / "recipes").exists(), \
        "bx2 built a job of a cancelled run"
    assert len(list((tmp_path / "cluster" / "bx1" / "log" / "recipes").glob("*.log"))) == 1, \
        "bx1 built the queued job of a cancelled run"
    assert digests(cache / "dcfpkg") == {} and not list((cache / "dcfpkg").glob(".tmp-*"))


def test_a_broker_over_tls(tmp_path: Path, x86_sets: Path, test_config: Config) -> None:
    """rediss:// with the test CA: a build goes through; a coordinator that trusts
    another CA (here: the system's) can't talk to the broker and says so."""
    tree = example_tree(tmp_path / "tree")
    with cluster(tmp_path / "cluster", {"bx1": "x86_64"}, tls=True) as c:
        c.start_host("bx1", test_config.cachedir)
        c.wait_serving(["bx1"])
        cache = cache_with(tmp_path / "coord-cache", x86_sets)
        env = coordinator_env(tmp_path, tree, cache, test_config)
        done = c.run_coordinator(["recipe", "build", "--buildhosts", "-j", "0", "--arch",
                                  "x86_64", "bhlib"], check=True, **env)
        assert "built 1, cached 0, failed 0, skipped 0" in done.stdout
        assert built_on(tmp_path / "coord-log" / "recipes" / "bhlib_1.0-1_amd64.log") == "bx1"
        untrusted = c.run_coordinator(["buildhost", "status"], GUESTPKG_BROKER_CA="",
                                      GUESTPKG_BROKER_RETRY_TIME="2")
    assert untrusted.returncode == 4, untrusted.stdout + untrusted.stderr
    assert "certificate verify failed" in untrusted.stderr, untrusted.stderr


def test_local_and_remote_slots_mix_and_no_serving_host_is_said(
        tmp_path: Path, x86_sets: Path, test_config: Config) -> None:
    tree = example_tree(tmp_path / "tree")
    with cluster(tmp_path / "cluster", {"bx1": "x86_64"}) as c:
        cache = cache_with(tmp_path / "coord-cache", x86_sets)
        env = coordinator_env(tmp_path, tree, cache, test_config)
        nobody = c.run_coordinator(["recipe", "build", "--buildhosts", "-j", "0", "--arch",
                                    "x86_64"], **env)
        assert nobody.returncode == 2, nobody.stdout + nobody.stderr
        assert "guestpkg: error: no buildhost for x86_64 is serving and -j 0 allows no " \
            "local build" in nobody.stderr
        c.start_host("bx1", test_config.cachedir)
        c.wait_serving(["bx1"])
        done = c.run_coordinator(["recipe", "build", "--buildhosts", "-j", "1", "--arch",
                                  "x86_64"], check=True, **env)
    assert "on 1 local slots and 1 slots of bx1" in done.stdout, done.stdout
    assert "built 5, cached 0, failed 0, skipped 0" in done.stdout, done.stdout
    where = {}
    for log in (tmp_path / "coord-log" / "recipes").glob("*.log"):
        match = re.search(r"^guestpkg: built on buildhost (\S+) ", log.read_text(), re.M)
        where[log.name] = match.group(1) if match else "here"
    assert set(where.values()) == {"here", "bx1"}, where
    assert len(digests(cache / "dcfpkg")) == 5
