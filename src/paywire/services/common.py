"""Small helpers the order services share: ids, resumable refusals, recorded errors."""

from __future__ import annotations

import secrets
from typing import Any

from paywire.domain.errors import ProviderError
from paywire.ports import Refund

# Provider refusals that are worth retrying later under the same key (the call may have run).
RESUMABLE = ("transient", "auth", "unknown", "awaiting_payer")


def new_id(prefix: str) -> str:
    """A random, URL-safe, sortable-enough id such as `ord_3f9c…`."""
    return f"{prefix}_{secrets.token_hex(12)}"


def stored_error(op_error: dict[str, Any] | None, provider: str) -> ProviderError:
    """A ProviderError rebuilt from an operation's recorded failure."""
    e = op_error or {}
    return ProviderError(str(e.get("message") or "the provider refused this operation"),
                         provider=provider, kind=str(e.get("kind") or "unknown"),
                         status=e.get("status"), name=e.get("name"), issue=e.get("issue"),
                         debug_id=e.get("debug_id"))


def error_json(exc: ProviderError) -> dict[str, Any]:
    """A provider refusal as an operation records it (`stored_error` reads it back)."""
    return {"kind": exc.kind, "status": exc.status, "name": exc.name, "issue": exc.issue,
            "debug_id": exc.debug_id, "message": exc.message}


def refund_fields(refund: Refund) -> dict[str, Any]:
    """A refund's fields by name, to rebuild it with some of them changed."""
    return {f: getattr(refund, f) for f in Refund.__dataclass_fields__}
