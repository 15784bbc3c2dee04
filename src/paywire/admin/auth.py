"""The dashboard's sign-in, without the web framework: password hashes, signed session cookies,
CSRF tokens and the sign-in throttle.

Password hashes are scrypt (the standard library's `hashlib.scrypt`), written as
`scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`; `paywire admin hash-password` prints one, and only
the hash is ever configured. A session is a cookie whose value is a signed JSON document (who,
when it ends, its CSRF token): HMAC-SHA256 with a key from the settings, so a server holds no
session state and every instance of a deployment accepts the same cookies. Every form carries
the session's CSRF token; the sign-in form, before any session, carries one from a signed
pre-session cookie (double submit). The throttle counts failed sign-ins per client address in
a sliding window (in memory: per process).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass

from pydantic import SecretStr

from paywire.api.keys import ApiKeys
from paywire.settings import valid_password_hash

# scrypt's cost: N = 2**15, r = 8, p = 1 (about 32 MiB and 50-100 ms a check).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> str:
    """A scrypt hash of `password` with a fresh salt, as `scrypt$n$r$p$salt$hash`."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM,
                            dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_password(password: str, encoded: str) -> bool:
    """Whether `password` matches the hash `encoded` (False for a malformed hash)."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        got = hashlib.scrypt(password.encode("utf-8", "surrogateescape"),
                             salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=_MAXMEM, dklen=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


# scrypt checks running at once in this process (each holds ~32 MiB and a core for 50-100 ms):
# a burst of sign-ins waits its turn instead of starving the event loop or the memory.
PASSWORD_CHECKS = 2
_process_checks = threading.BoundedSemaphore(PASSWORD_CHECKS)
_loop_checks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary())


def _bounded_check(password: str, encoded: str) -> bool:
    with _process_checks:
        return check_password(password, encoded)


async def check_password_off_loop(password: str, encoded: str) -> bool:
    """`check_password` in a worker thread, at most `PASSWORD_CHECKS` at once in the process
    (waiting ones queue on their event loop, holding no thread)."""
    loop = asyncio.get_running_loop()
    gate = _loop_checks.get(loop)
    if gate is None:
        gate = _loop_checks[loop] = asyncio.Semaphore(PASSWORD_CHECKS)
    async with gate:
        return await asyncio.to_thread(_bounded_check, password, encoded)


def valid_hash(encoded: str) -> bool:
    """Whether `encoded` reads as a hash `hash_password` writes (the settings check
    PAYWIRE_ADMIN_PASSWORD_HASH with it at start-up)."""
    return valid_password_hash(encoded)


def same_text(given: str, expected: str) -> bool:
    """`given == expected` in constant time, for any text (`hmac.compare_digest` refuses a
    str that is not ASCII: a client's cookie or form field may be anything)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in operator: who, until when, the CSRF token of their forms, and the
    credential they signed in with (`Credentials.fingerprint`: never the secret itself)."""

    actor: str
    expires: int  # epoch seconds
    csrf: str
    credential: str


class Signer:
    """Signs and checks cookie values (HMAC-SHA256 over the value, `purpose`-separated)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "Signer(<key>)"

    def sign(self, purpose: str, doc: dict[str, object]) -> str:
        """`doc` as a cookie value only this key can have made, for `purpose` only."""
        body = _b64(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def unsign(self, purpose: str, value: str | None) -> dict[str, object] | None:
        """The document a value `sign(purpose, ...)` made, or None (forged, altered, other)."""
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        if not same_text(mac, self._mac(purpose, body)):
            return None
        try:
            doc = json.loads(_unb64(body))
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def _mac(self, purpose: str, body: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\x00{body}".encode(),
                             hashlib.sha256).digest())

    def session(self, actor: str, lifetime: int, now: float | None = None, *,
                credential: str) -> tuple[str, Session]:
        """A new session for `actor`, signed in with `credential` (its fingerprint), and its
        cookie value."""
        made = Session(actor, int((now or time.time()) + lifetime), secrets.token_urlsafe(24),
                       credential)
        return self.sign("session", {"sub": made.actor, "exp": made.expires,
                                     "csrf": made.csrf, "cred": made.credential}), made

    def read_session(self, value: str | None, now: float | None = None) -> Session | None:
        """The session a cookie value carries, or None (absent, forged or ended)."""
        doc = self.unsign("session", value)
        if doc is None:
            return None
        actor, expires, csrf = doc.get("sub"), doc.get("exp"), doc.get("csrf")
        credential = doc.get("cred")
        if not (isinstance(actor, str) and isinstance(expires, int) and isinstance(csrf, str)
                and isinstance(credential, str)):
            return None
        if expires <= (now or time.time()):
            return None
        return Session(actor, expires, csrf, credential)


SESSION_LABEL = b"paywire-admin-session"


def session_key(secret: SecretStr | None, api_keys: list[SecretStr]) -> bytes:
    """The session-signing key: HMAC of a fixed label under the configured secret or, with
    none, under the API keys (sorted, each length-prefixed), so every instance agrees and
    rotating the keys ends every session. Never a plain hash of configuration.

    Password sign-in needs the secret (the settings refuse it without one); with nothing
    configured, nothing signs in and the key is random."""
    if secret is not None:
        material = secret.get_secret_value().encode()
    elif api_keys:
        keys = sorted(k.get_secret_value().encode() for k in api_keys)
        material = b"".join(len(k).to_bytes(4, "big") + k for k in keys)
    else:
        return secrets.token_bytes(32)
    return hmac.new(material, SESSION_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed in, and the fingerprint of the credential they signed in with."""

    actor: str
    credential: str


def password_fingerprint(encoded: str) -> str:
    """A short fingerprint of a configured password hash (`pw_...`): changes when the hash
    does, and tells nothing about the hash or the password."""
    return "pw_" + hmac.new(b"paywire-admin-password", encoded.encode(),
                            hashlib.sha256).hexdigest()[:16]


class Credentials:
    """What signs in: the API keys (an operator is its key's caller id) and the password.

    A session records the credential it was made with (an API key's caller id, a digest of
    the key; the password hash's fingerprint); `current` says whether it still signs in, so
    removing a key or changing the password ends the sessions it made."""

    def __init__(self, api_keys: list[SecretStr], user: str,
                 password_hash: SecretStr | None) -> None:
        self._keys = ApiKeys(api_keys)
        self._any_key = bool(api_keys)
        self._user = user
        self._hash = None if password_hash is None else password_hash.get_secret_value()
        self._current = frozenset(
            [i for i in (self._keys.identify(k.get_secret_value()) for k in api_keys) if i]
            + ([password_fingerprint(self._hash)] if self._hash else []))

    def __repr__(self) -> str:
        return f"Credentials({self._keys!r}, password {'set' if self._hash else 'unset'})"

    @property
    def configured(self) -> bool:
        """Whether anything can sign in."""
        return bool(self._hash) or self._any_key

    def current(self, credential: str) -> bool:
        """Whether the credential a session was made with is still configured."""
        return credential in self._current

    async def identify(self, presented: str) -> Identity | None:
        """Who `presented` signs in as: `key_...` for an API key, the user for the password,
        or None. Both are checked whatever matches (no early exit); the password's scrypt
        check runs off the event loop (`check_password_off_loop`)."""
        by_key = self._keys.identify(presented) if presented else None
        by_password = (self._hash is not None and bool(presented)
                       and await check_password_off_loop(presented, self._hash))
        if by_key is not None:
            return Identity(by_key, by_key)
        if by_password and self._hash is not None:
            return Identity(self._user, password_fingerprint(self._hash))
        return None


class Throttle:
    """Failed sign-ins per client address in a sliding window (in this process)."""

    def __init__(self, attempts: int, window: float, *, max_clients: int = 10_000) -> None:
        self.attempts = attempts
        self.window = window
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        seen = self._failures.get(client, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        return seen

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds before `client` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        seen = self._recent(client, now)
        if len(seen) < self.attempts:
            return 0
        return max(1, int(seen[0] + self.window - now) + 1)

    def failed(self, client: str, now: float | None = None) -> None:
        """Count a failed sign-in."""
        now = time.monotonic() if now is None else now
        if client not in self._failures and len(self._failures) >= self.max_clients:
            # Forget the quietest clients rather than grow without bound.
            for stale in [c for c, s in self._failures.items() if not self._recent(c, now)]:
                del self._failures[stale]
            if len(self._failures) >= self.max_clients:
                self._failures.pop(next(iter(self._failures)))
        seen = self._recent(client, now)
        seen.append(now)
        self._failures[client] = seen

    def succeeded(self, client: str) -> None:
        """Forget `client`'s failures."""
        self._failures.pop(client, None)
