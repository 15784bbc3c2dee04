"""The SHA phrase signature as APS computes it: the emulator's own, independent implementation.

Sort every parameter but `signature` by name, concatenate `name=value`, wrap in the phrase on
both ends, hash, lowercase hex. Requests are checked with the request phrase (card fields the
browser adds are not part of a request signature); everything APS sends is signed with the
response phrase. "SHA-128" is SHA-1 and the HMAC types key HMAC with the phrase over the same
wrapped string: both assumptions, matching paywire's provider.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

CARD_FIELDS = frozenset({"card_number", "card_security_code", "expiry_date", "card_holder_name",
                         "remember_me"})
_DIGESTS = {"SHA-256": hashlib.sha256, "SHA-512": hashlib.sha512, "SHA-128": hashlib.sha1,
            "HMAC-SHA256": hashlib.sha256, "HMAC-SHA512": hashlib.sha512}


def sign(params: Mapping[str, str], phrase: str, sha_type: str,
         exclude: frozenset[str] = frozenset()) -> str:
    """The signature of `params` (string values) under `phrase`."""
    body = "".join(f"{k}={params[k]}" for k in sorted(params)
                   if k != "signature" and k not in exclude)
    text = f"{phrase}{body}{phrase}".encode()
    digest = _DIGESTS[sha_type]
    if sha_type.startswith("HMAC"):
        return hmac.new(phrase.encode(), text, digest).hexdigest()
    return digest(text).hexdigest()


def valid(params: Mapping[str, str], phrase: str, sha_type: str,
          exclude: frozenset[str] = frozenset()) -> bool:
    """Whether `params["signature"]` signs the rest (constant-time comparison)."""
    given = params.get("signature", "")
    expected = sign(params, phrase, sha_type, exclude)
    return hmac.compare_digest(expected.encode(), given.lower().encode("utf-8", "replace"))


def signed(params: Mapping[str, str], phrase: str, sha_type: str) -> dict[str, str]:
    """`params` with their response signature added."""
    out = {k: v for k, v in params.items() if k != "signature"}
    out["signature"] = sign(out, phrase, sha_type)
    return out
