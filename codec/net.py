"""What the server and the client share about the network: loopback, and the files that hold
their secrets (bearer tokens, TLS material)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from codec.errors import CodecError

MAX_SECRET_FILE = 1 << 20  # a PEM chain or a token is a few KiB
TOKEN = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces: what an HTTP/2 header value can carry
# Trailing metadata of an UNAVAILABLE answer whose cause will pass (a level being prepared): the
# milliseconds, in decimal ASCII, after which the same request is worth making again.
RETRY_AFTER_KEY = "aecodec-retry-after-ms"


def read_secret(path: Path, what: str) -> bytes:
    """The bytes of a token or TLS file, or a one-line error naming it."""
    try:
        if path.stat().st_size > MAX_SECRET_FILE:
            raise CodecError(f"{path}: the {what} is larger than {MAX_SECRET_FILE} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise CodecError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def read_token(path: Path) -> str:
    """The bearer token in ``path``, stripped of surrounding white space; refused if it is empty or
    holds characters a gRPC header cannot carry."""
    try:
        token = read_secret(path, "token file").decode().strip()
    except UnicodeDecodeError:
        token = "\n"
    if not TOKEN.fullmatch(token):
        raise CodecError(f"{path}: the token file must hold one token of printable ASCII without spaces")
    return token


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only: localhost, 127.0.0.0/8 or ::1 (brackets allowed)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
