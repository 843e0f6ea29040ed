# SPDX-License-Identifier: GPL-2.0-or-later
"""The Redis broker: one way to connect (password, optional TLS) for Celery and for
the blobs, and one way to survive losing it.

The broker URL (setting ``broker``) names the server only; the Redis ACL user and its
password come from ``broker-user`` and ``broker-password-file``, so no secret is on a
command line, in the environment or in a URL that a log shows.  ``rediss://`` is Redis
over TLS; the server's certificate is checked (``CERT_REQUIRED``) against ``broker-ca``
or the system's CAs.

Celery is configured for JSON only (``accept_content=['json']``): pickle would let
anyone who can write to the broker run code in the worker.  Tasks are acknowledged
late and rejected when their worker is lost, so a job a dead worker held goes back to
the queue; :mod:`.worker`'s lease makes sure it is then built once.
"""

from __future__ import annotations

import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from guestpkg.config import Config
from guestpkg.errors import ConfigError, NetworkError, SystemStateError

if TYPE_CHECKING:
    import redis
    from celery import Celery

T = TypeVar("T")

#: Celery's name of the one task; its queue per architecture is QUEUE_PREFIX + arch.
TASK = "guestpkg.build_recipe"
QUEUE_PREFIX = "guestpkg.recipes."
#: Every key guestpkg writes itself (blobs, leases, host heartbeats) starts with this.
PREFIX = "guestpkg:"
MAX_PASSWORD = 4096
#: broker-visibility-timeout 0: the broker never gives a taken job to another worker
NEVER_S = 10 * 365 * 86400.0


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how to log in; :attr:`shown` is safe to print."""

    url: str            # with user and password: never printed
    shown: str          # the configured URL, without secrets
    ssl: dict[str, Any] | None
    retry_s: float
    visibility_s: float = 3600.0


def queue(arch: str) -> str:
    return QUEUE_PREFIX + arch


def broker(config: Config) -> Broker:
    """The broker of *config*; :class:`ConfigError` when it is unset or malformed."""
    if not config.broker:
        raise ConfigError("no broker is set",
                          hint="set broker = redis://HOST:PORT/0 (rediss:// for TLS) in "
                          "/etc/guestpkg/guestpkg.conf; see docs/buildhosts.md")
    parts = urllib.parse.urlsplit(config.broker)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(f"broker {config.broker!r} is not redis://HOST:PORT/DB or "
                          "rediss://HOST:PORT/DB")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("the broker URL names only the server: give the user in "
                          "broker-user and the password in broker-password-file")
    db = parts.path.lstrip("/") or "0"
    if not db.isdigit():
        raise ConfigError(f"broker {config.broker!r}: the database must be a number")
    password = read_password(config)
    port = parts.port or 6379
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    quote = urllib.parse.quote
    url = (f"{parts.scheme}://{quote(config.broker_user, safe='')}:{quote(password, safe='')}"
           f"@{host}:{port}/{db}")
    tls: dict[str, Any] | None = None
    if parts.scheme == "rediss":
        tls = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        if config.broker_ca:
            tls["ssl_ca_certs"] = config.broker_ca
    return Broker(url, f"{parts.scheme}://{host}:{port}/{db}", tls,
                  config.broker_retry_time, config.broker_visibility_timeout)


def read_password(config: Config) -> str:
    path = config.broker_password_file
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PASSWORD + 1)
    except OSError as e:
        raise ConfigError(f"can't read the broker password {path}: {e.strerror}",
                          hint="write the Redis ACL user's password there (mode 0600), or "
                          "set broker-password-file") from None
    text = data.decode("utf-8", "replace").strip("\n")
    if not text or len(data) > MAX_PASSWORD or "\n" in text:
        raise ConfigError(f"{path}: expected the broker password on one line")
    return text


def _missing(what: str) -> SystemStateError:
    # Suggested, not required: a machine that only installs guests never needs them.
    return SystemStateError(f"buildhosts need {what}, which is not installed",
                            hint="apt-get install python3-celery python3-redis")


def make_app(b: Broker, name: str = "guestpkg") -> Celery:
    """A Celery app on *b*: JSON only, late acknowledgement."""
    try:
        from celery import Celery
    except ImportError:
        raise _missing("Celery") from None

    # No result backend: a worker stores each result itself (worker.done_key), where
    # the coordinator reads it through the same retrying client as everything else.
    app = Celery(name, broker=b.url, set_as_current=False)
    app.conf.update(
        accept_content=["json"], task_serializer="json", result_serializer="json",
        result_accept_content=["json"], event_serializer="json",
        task_ignore_result=True, task_acks_late=True, task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # a job a worker took but has not acknowledged (it died, or stopped without its
        # connection closing) goes back to the queue after this long; the lease
        # (worker.py) keeps such a copy of a running job from building it twice
        broker_transport_options={"visibility_timeout": b.visibility_s or NEVER_S},
        result_expires=86400, worker_hijack_root_logger=False,
        broker_connection_retry=True, broker_connection_max_retries=None,
        worker_send_task_events=False, task_send_sent_event=False,
        broker_use_ssl=b.ssl,
        broker_connection_timeout=5, redis_socket_timeout=10,
        redis_socket_connect_timeout=5,
    )
    return app


def client(b: Broker) -> redis.Redis[bytes]:
    """A Redis client for the blobs, leases and heartbeats, on the same login."""
    try:
        import redis
    except ImportError:
        raise _missing("the Redis client") from None

    kwargs: dict[str, Any] = {"socket_timeout": 10, "socket_connect_timeout": 5}
    if b.ssl:
        kwargs["ssl_cert_reqs"] = "required"
        if "ssl_ca_certs" in b.ssl:
            kwargs["ssl_ca_certs"] = b.ssl["ssl_ca_certs"]
    return redis.Redis.from_url(b.url, **kwargs)


def connection_errors() -> tuple[type[BaseException], ...]:
    """What a lost or refused broker connection raises, from redis and from kombu."""
    import redis
    from kombu.exceptions import OperationalError

    return (redis.ConnectionError, redis.TimeoutError, OperationalError, ConnectionError,
            TimeoutError)


def retrying(b: Broker, what: str, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, retried with exponential backoff (0.5 s doubling, at most 8 s) while the
    broker is unreachable, for at most ``broker-retry-time``; then one clear error."""
    errors = connection_errors()
    deadline = time.monotonic() + b.retry_s
    delay = 0.5
    while True:
        try:
            return call(*args)
        except errors as e:
            if time.monotonic() + delay > deadline:
                raise NetworkError(
                    f"lost the broker {b.shown} while {what}: {e} (retried for "
                    f"{b.retry_s:.0f} s)",
                    hint="start the broker again (redis-server) and run the same command: "
                    "every result already verified is in the cache") from None
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
