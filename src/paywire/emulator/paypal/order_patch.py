"""`PATCH /v2/checkout/orders/{id}`: the JSON Patch subset PayPal supports on orders."""

from __future__ import annotations

import copy
import re
from typing import Any

from paywire.emulator.paypal.errors import issue
from paywire.emulator.paypal.order_request import parse_unit
from paywire.emulator.paypal.state import Order, PurchaseUnit

_UNIT_PATH = re.compile(r"^/purchase_units/@reference_id=='(?P<ref>[^']{1,256})'(?P<rest>/.*)?$")
# Fields of a purchase unit PayPal lets a merchant patch.
PATCHABLE = ("amount", "items", "custom_id", "invoice_id", "description", "soft_descriptor",
             "shipping", "payee", "payment_instruction")


def _split(rest: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in rest.split("/")[1:]]


def _apply_one(target: dict[str, Any], parts: list[str], op: str, value: Any, path: str) -> None:
    node: Any = target
    for part in parts[:-1]:
        if isinstance(node, dict):
            if part not in node:
                if op != "add":
                    raise issue(400, "INVALID_PATCH_OPERATION", path, location="body")
                node[part] = {}
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise issue(422, "INVALID_JSON_POINTER_FORMAT", path)
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node) + (op == "add"):
            raise issue(422, "INVALID_JSON_POINTER_FORMAT", path)
        idx = int(last)
        if op == "remove":
            node.pop(idx)
        elif op == "add":
            node.insert(idx, value)
        else:
            node[idx] = value
        return
    if not isinstance(node, dict):
        raise issue(422, "INVALID_JSON_POINTER_FORMAT", path)
    present = last in node
    if (op == "add" and present) or (op in ("replace", "remove") and not present):
        raise issue(400, "INVALID_PATCH_OPERATION", path, location="body")
    if op == "remove":
        del node[last]
    else:
        node[last] = value


def apply_patch(order: Order, ops: Any) -> None:
    """Validate every operation, then apply them all or none."""
    if not isinstance(ops, list) or not ops:
        raise issue(400, "MALFORMED_REQUEST_JSON", "/")
    intent = order.intent
    units = {u.reference_id: copy.deepcopy(u.raw) for u in order.units}
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise issue(400, "MALFORMED_REQUEST_JSON", f"/{i}")
        name, path = op.get("op"), op.get("path")
        if name is None:
            raise issue(400, "MISSING_REQUIRED_PARAMETER", f"/{i}/op")
        if name not in ("add", "replace", "remove"):
            raise issue(400, "INVALID_PARAMETER_VALUE", f"/{i}/op", name)
        if path is None:
            raise issue(422, "PATCH_PATH_REQUIRED", f"/{i}/path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise issue(422, "INVALID_JSON_POINTER_FORMAT", f"/{i}/path", path)
        if name != "remove" and "value" not in op:
            raise issue(422, "PATCH_VALUE_REQUIRED", f"/{i}/value")
        value = op.get("value")
        if path == "/intent":
            if name != "replace" or value not in ("CAPTURE", "AUTHORIZE"):
                raise issue(422, "UNSUPPORTED_INTENT", path, value)
            intent = str(value)
            continue
        m = _UNIT_PATH.match(path)
        if m is None:
            raise issue(422, "NOT_PATCHABLE", path)
        ref = m.group("ref")
        if ref not in units:
            raise issue(422, "REFERENCE_ID_NOT_FOUND", path, ref)
        parts = _split(m.group("rest") or "")
        if not parts or parts[0] not in PATCHABLE:
            raise issue(422, "NOT_PATCHABLE", path)
        _apply_one(units[ref], parts, name, copy.deepcopy(value), path)
    single = len(order.units) == 1
    parsed: list[PurchaseUnit] = []
    currency = None
    for i, old in enumerate(order.units):
        pu = parse_unit(units[old.reference_id], i, single, currency)
        currency = pu.currency
        pu.capture_ids, pu.authorization_ids = old.capture_ids, old.authorization_ids
        parsed.append(pu)
    order.intent = intent
    order.units = parsed
