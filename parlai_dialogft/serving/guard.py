"""Who may call the server, and how much they may send.

* API keys: ``--serve-api-keys k1,k2`` or ``--serve-api-keys /path/keys.txt`` (one a line,
  ``#`` comments). Optional on a loopback address (only this machine can connect); required
  on any other, where the server refuses to start without them.
* Request bodies over ``--serve-max-body-bytes`` get 413 before they are read whole: the
  ``Content-Length`` is checked first, and a chunked body is counted as it arrives.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import FrozenSet, Optional

from parlai_dialogft.utils.errors import UserError


class GuardError(UserError):
    """A setting that makes serving unsafe or impossible; the message names the flag."""


def load_api_keys(value: Optional[str]) -> FrozenSet[str]:
    """Keys from a comma list, or from a file when ``value`` is the path of one."""
    if not value:
        return frozenset()
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            lines = [line.split("#", 1)[0].strip() for line in f]
        keys = frozenset(line for line in lines if line)
        if not keys:
            raise GuardError(f"--serve-api-keys {value}: the file has no keys")
        return keys
    keys = frozenset(key.strip() for key in value.split(",") if key.strip())
    if not keys:
        raise GuardError("--serve-api-keys: no keys in the list")
    return keys


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; names and wildcards (0.0.0.0) are not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, keys: FrozenSet[str]) -> None:
    if not keys and not is_loopback(host):
        raise GuardError(
            f"--host {host} lets other machines connect: give --serve-api-keys (a comma list or a "
            "file), or bind to 127.0.0.1"
        )


def key_matches(presented: str, keys: FrozenSet[str]) -> bool:
    # Constant-time per key: a timing side channel should not reveal a key's prefix.
    return any(hmac.compare_digest(presented.encode(), key.encode()) for key in keys)


def bearer_token(authorization: Optional[str]) -> Optional[str]:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class BodyTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"request body over {limit:,} bytes")
        self.limit = limit


#: Bytes of a refused body still read (and dropped) before answering 413: a client that is
#: still sending when the server closes gets a broken pipe, not the 413 that says why.
DRAIN_CAP = 4 * 1024 * 1024


class BodyLimitMiddleware:
    """Pure ASGI: stop reading a request body past ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused at the first read; a chunked body
    when its running total passes the limit. The rest is drained (up to :data:`DRAIN_CAP`,
    never kept), then :class:`BodyTooLarge` is raised, which the app answers with 413.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        received = int(declared) if declared.isdigit() else 0  # a declared size counts at once

        async def refuse():
            dropped = 0
            while dropped < DRAIN_CAP:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
                dropped += len(message.get("body", b""))
            raise BodyTooLarge(limit)

        async def limited_receive():
            nonlocal received
            if received > limit:
                await refuse()
            message = await receive()
            if message["type"] == "http.request" and not declared.isdigit():
                received += len(message.get("body", b""))
                if received > limit and message.get("more_body"):
                    await refuse()
                elif received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)
