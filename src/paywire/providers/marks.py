"""Reading an untrusted body's own labels for the rejection log, for any provider.

A refused delivery is recorded under the event id and type its JSON names, when it names them
(`id`, `event_type`: PayPal's envelope, and the doctor's unsigned probe of APS's feedback URL,
which names itself so that its rejection can be told from a real one). Nothing is trusted or
acted on: the values only label a row, cut to 128 characters.
"""

from __future__ import annotations

import json

_MAX = 128


def json_labels(body: bytes) -> tuple[str | None, str | None]:
    """(event id, event type) a JSON object body names; None for anything else."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    ident, kind = data.get("id"), data.get("event_type")
    return (ident[:_MAX] if isinstance(ident, str) else None,
            kind[:_MAX] if isinstance(kind, str) else None)
