"""APS's SHA phrase signature: pure functions of (parameters, phrase, SHA type), and a signer.

The documented algorithm (aps.md, "Signature"): take every parameter except `signature`, sort
by name (case-sensitive, i.e. by code point), concatenate `name=value` with nothing between
pairs, wrap the result in the phrase on both ends, hash, lowercase hex. Requests are signed with
the **request phrase**; APS signs responses and feedback with the **response phrase**.

Verification runs over every parameter received (except `signature`): empty values and names
paywire does not know included, never a fixed list, so a field added in transit breaks the
signature. The comparison is constant time (`hmac.compare_digest`).

Assumptions, labelled (aps.md *(check)*):
- "SHA-128" in APS's dashboard is taken to mean SHA-1 (there is no 128-bit SHA).
- The HMAC types are unconfirmed: HMAC keyed with the phrase over the same wrapped string.
- Nested values (wallet payloads) concatenate as `{k=v, k=v}` / `[v, v]` in received order;
  JSON `true`/`false`/`null` as their JSON text. paywire sends no nested values; a received one
  that APS canonicalizes differently fails verification (fail closed), never passes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Protocol

from paywire.domain.errors import ConfigError, SignatureError

SIGNATURE = "signature"
# Card fields the browser adds to a signed form: never part of the merchant's request signature.
CARD_FIELDS = frozenset({"card_number", "card_security_code", "expiry_date", "card_holder_name",
                         "remember_me"})


class ShaType(StrEnum):
    """The SHA type chosen in APS's dashboard (Integration settings > Security settings)."""

    SHA256 = "SHA-256"
    SHA512 = "SHA-512"
    SHA128 = "SHA-128"  # assumption: SHA-1
    HMAC256 = "HMAC-SHA256"  # assumption: HMAC(phrase, wrapped string)
    HMAC512 = "HMAC-SHA512"  # assumption: HMAC(phrase, wrapped string)

    @classmethod
    def parse(cls, value: str) -> ShaType:
        """The SHA type named `value` ("SHA-256", "sha256", "HMAC-512"...); ConfigError if none."""
        key = "".join(c for c in value.upper() if c.isalnum())
        found = _ALIASES.get(key)
        if found is None:
            raise ConfigError(f"APS SHA type {value!r} is not one of "
                              f"{', '.join(m.value for m in cls)}")
        return found


_ALIASES: dict[str, ShaType] = {
    "SHA256": ShaType.SHA256, "SHA512": ShaType.SHA512, "SHA128": ShaType.SHA128,
    "HMACSHA256": ShaType.HMAC256, "HMAC256": ShaType.HMAC256,
    "HMACSHA512": ShaType.HMAC512, "HMAC512": ShaType.HMAC512,
}
_HASHES: dict[ShaType, Callable[..., Any]] = {
    ShaType.SHA256: hashlib.sha256, ShaType.SHA512: hashlib.sha512,
    ShaType.SHA128: hashlib.sha1, ShaType.HMAC256: hashlib.sha256,
    ShaType.HMAC512: hashlib.sha512,
}


class SecretLike(Protocol):
    """What pydantic's SecretStr offers (accepted without importing settings)."""

    def get_secret_value(self) -> str:
        """The secret itself."""
        ...


class _Secret:
    """A string that never shows itself in repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: SecretLike | str) -> None:
        self._value = value if isinstance(value, str) else value.get_secret_value()

    def reveal(self) -> str:
        """The secret itself (only to compute a signature)."""
        return self._value

    def __repr__(self) -> str:
        return "'**********'"

    __str__ = __repr__


def canonical_value(value: Any) -> str:
    """One parameter value as it enters the signature string (see the module's assumptions)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={canonical_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(canonical_value(v) for v in value) + "]"
    raise TypeError(f"cannot sign a parameter value of type {type(value).__name__}")


def canonical_params(params: Mapping[str, Any], *, exclude: frozenset[str] = frozenset()) -> str:
    """`name=value` of every parameter but `signature` (and `exclude`), sorted, concatenated."""
    names = sorted(k for k in params if k != SIGNATURE and k not in exclude)
    return "".join(f"{name}={canonical_value(params[name])}" for name in names)


def signature_string(params: Mapping[str, Any], phrase: str, *,
                     exclude: frozenset[str] = frozenset()) -> str:
    """The string that is hashed: phrase + canonical parameters + phrase (holds the secret)."""
    return phrase + canonical_params(params, exclude=exclude) + phrase


def compute(params: Mapping[str, Any], phrase: str, sha_type: ShaType, *,
            exclude: frozenset[str] = frozenset()) -> str:
    """The signature of `params` under `phrase`: lowercase hex."""
    if not phrase:
        raise ConfigError("an APS SHA phrase is required")
    data = signature_string(params, phrase, exclude=exclude).encode("utf-8")
    digest = _HASHES[sha_type]
    if sha_type in (ShaType.HMAC256, ShaType.HMAC512):
        return hmac.new(phrase.encode("utf-8"), data, digest).hexdigest()
    return str(digest(data).hexdigest())


def matches(params: Mapping[str, Any], phrase: str, sha_type: ShaType, *,
            exclude: frozenset[str] = frozenset()) -> bool:
    """Whether `params["signature"]` is the signature of the other parameters (constant time)."""
    received = params.get(SIGNATURE)
    if not isinstance(received, str) or not received:
        return False
    expected = compute(params, phrase, sha_type, exclude=exclude)
    # Hex is case-insensitive; bytes keep compare_digest total over non-ASCII input.
    return hmac.compare_digest(expected.encode("ascii"),
                               received.strip().lower().encode("utf-8", "replace"))


def delivery_key(params: Mapping[str, Any]) -> str:
    """A redelivery's identity: SHA-256 of the canonical signed parameters (no phrase in it).

    APS sends no event id; a redelivery repeats the same parameters, so the same key.
    """
    return hashlib.sha256(canonical_params(params).encode("utf-8")).hexdigest()


_CAUSE = ("the SHA response phrase or SHA type configured in paywire differs from the one in "
          "APS's dashboard, or the parameters were altered in transit")


class Signer:
    """One merchant account's SHA type and phrases: signs requests, verifies APS's answers."""

    def __init__(self, sha_type: ShaType | str, request_phrase: SecretLike | str,
                 response_phrase: SecretLike | str) -> None:
        self.sha_type = sha_type if isinstance(sha_type, ShaType) else ShaType.parse(sha_type)
        self._request = _Secret(request_phrase)
        self._response = _Secret(response_phrase)
        if not self._request.reveal() or not self._response.reveal():
            raise ConfigError("APS: both the SHA request phrase and the SHA response phrase "
                              "are required")

    def __repr__(self) -> str:
        return f"Signer(sha_type={self.sha_type.value!r})"

    def request_signature(self, params: Mapping[str, Any]) -> str:
        """The request signature of `params` (card fields a browser adds left out)."""
        return compute(params, self._request.reveal(), self.sha_type, exclude=CARD_FIELDS)

    def sign_request(self, params: Mapping[str, str]) -> dict[str, str]:
        """`params` plus their request `signature`."""
        out = {k: v for k, v in params.items() if k != SIGNATURE}
        out[SIGNATURE] = self.request_signature(out)
        return out

    def response_signature(self, params: Mapping[str, Any]) -> str:
        """The signature APS would put on `params` with the response phrase (tests, doctor)."""
        return compute(params, self._response.reveal(), self.sha_type)

    def response_matches(self, params: Mapping[str, Any]) -> bool:
        """Whether `params` carry APS's response signature over all of them (constant time)."""
        return matches(params, self._response.reveal(), self.sha_type)

    def verify_response(self, params: Mapping[str, Any]) -> None:
        """Raise `SignatureError` unless `params` carry a valid response signature."""
        received = params.get(SIGNATURE)
        if not isinstance(received, str) or not received.strip():
            raise SignatureError("the APS parameters carry no signature", check="signature",
                                 likely_cause="not sent by APS (or a proxy dropped the field)")
        try:
            ok = self.response_matches(params)
        except TypeError as exc:
            raise SignatureError(f"APS parameters cannot be canonicalized: {exc}",
                                 check="params", likely_cause="a malformed delivery") from exc
        if not ok:
            raise SignatureError("the APS response signature does not match the parameters",
                                 check="signature", likely_cause=_CAUSE,
                                 details={"sha_type": self.sha_type.value})

    def self_test(self) -> bool:
        """Sign and verify a fixed parameter set with both phrases (for `doctor`)."""
        probe = {"access_code": "probe", "amount": "1000", "command": "PURCHASE"}
        signed = dict(probe, signature=self.response_signature(probe))
        return self.response_matches(signed) and len(self.request_signature(probe)) == len(
            signed[SIGNATURE])
