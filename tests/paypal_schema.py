"""PayPal's published OpenAPI files as a validator for the responses the emulator sends.

The files live outside the project (`/work/shared/specs/paypal/`, or `$PAYWIRE_PAYPAL_SPECS`) and
are read, never copied. They are OpenAPI 3.0, whose schema objects are JSON Schema draft 4 with a
few extensions: `nullable` is rewritten into a `null` alternative, and annotations that do not
constrain a response (`readOnly`, `writeOnly`, `discriminator`, `example`, `x-*`, ...) are dropped.
`$ref`s point within each file (`#/components/schemas/...`, `#/components/responses/...`).

`validate_response(method, path, status, body)` finds the operation whose path template matches
the concrete path, picks the response documented for the status (else `default`), and validates
the body against its `application/json` schema. `check_request_log` does that for every response
an emulator recorded, skipping the emulator's own pages and checking OAuth (which has no spec
file here) by hand.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPECS_ENV = "PAYWIRE_PAYPAL_SPECS"
DEFAULT_SPECS_DIR = Path("/work/shared/specs/paypal")
SPEC_FILES = (
    "checkout_orders_v2.json",
    "payments_payment_v2.json",
    "notifications_webhooks_v1.json",
    "customer_disputes_v1.json",
)

# Paths the emulator serves that are not PayPal REST operations: its control API, the buyer's
# approval pages, the JS SDK stub and the webhook signing certificates.
EMULATOR_ONLY_PREFIXES = ("/_emulator", "/checkoutnow", "/sdk/js", "/v1/notifications/certs")
OAUTH_TOKEN_PATH = "/v1/oauth2/token"

# Annotations of OpenAPI 3.0 schema objects that never constrain an instance.
_DROPPED_KEYWORDS = frozenset({
    "readOnly", "writeOnly", "discriminator", "example", "examples", "xml", "externalDocs",
    "deprecated", "nullable",
})
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_SINGLES = ("not", "additionalProperties", "items", "additionalItems")

# The error shape PayPal answers with where its files document nothing for a status (405, 429,
# 502, 504, ...): every PayPal error carries at least a name, a message and a debug id.
GENERIC_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "message", "debug_id"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
        "message": {"type": "string", "minLength": 1},
        "debug_id": {"type": "string", "minLength": 1},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["issue"],
                "properties": {"issue": {"type": "string"}, "description": {"type": "string"}},
            },
        },
        "links": {"type": "array", "items": {"type": "object"}},
    },
}

_MAX_MESSAGE = 300

# Issues PayPal documents for an operation outside its OpenAPI files (on the API's error pages),
# each with the page that documents it. A detail naming one of these, in an answer of that
# operation and status, is held to the generic detail shape (an issue and a description) instead
# of the operation's documented table; the rest of the body is still checked against the spec.
DOCUMENTED_OUTSIDE_SPEC: dict[tuple[str, int], dict[str, str]] = {
    ("authorizations.reauthorize", 422): {
        # Reauthorizing inside the 3-day honor period (payments 2.5 omits it).
        "REAUTHORIZATION_TOO_SOON":
            "https://developer.paypal.com/api/payments/v2/errors/reauthorization_too_soon",
        # Reauthorizing above 115% of the original, or more than USD 75 over it.
        "AUTHORIZATION_AMOUNT_EXCEEDED":
            "https://developer.paypal.com/api/payments/v2/errors/authorization_amount_exceeded",
    },
}
_DOCUMENTED_DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["issue", "description"],
    "properties": {"issue": {"type": "string"}, "description": {"type": "string", "minLength": 1},
                   "field": {"type": "string"}, "value": {"type": "string"},
                   "location": {"type": "string"}},
}


class SpecsMissing(RuntimeError):
    """PayPal's OpenAPI files are not where the harness looks for them."""


class UnknownOperation(LookupError):
    """No operation in PayPal's files matches the method and path."""


@dataclass(frozen=True)
class Violation:
    """One way a response differs from PayPal's documented schema."""

    operation: str  # "orders.get GET /v2/checkout/orders/{id}"
    status: int
    where: str  # JSON path inside the body ("$" = the body itself)
    message: str

    def __str__(self) -> str:
        return f"{self.operation} -> {self.status}: at {self.where}: {self.message}"


@dataclass(frozen=True)
class Operation:
    """One documented operation of one spec file."""

    spec: str  # file name
    method: str  # upper case
    template: str  # "/v2/checkout/orders/{id}"
    operation_id: str
    pattern: re.Pattern[str]
    literal_segments: int  # more literal segments = more specific template

    @property
    def label(self) -> str:
        """How violations name the operation."""
        return f"{self.operation_id} {self.method} {self.template}"


def specs_dir() -> Path:
    """Where PayPal's OpenAPI files are read from."""
    return Path(os.environ.get(SPECS_ENV) or DEFAULT_SPECS_DIR)


def missing_specs_reason(directory: Path | None = None) -> str | None:
    """Why the spec files cannot be used, or None when all four are present."""
    base = directory or specs_dir()
    absent = [name for name in SPEC_FILES if not (base / name).is_file()]
    if not absent:
        return None
    return (f"PayPal OpenAPI files missing from {base} ({', '.join(absent)}); "
            f"set {SPECS_ENV} to the directory holding them")


def to_json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema object rewritten as plain JSON Schema draft 4."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYWORDS or key.startswith("x-"):
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key in _SCHEMA_SINGLES:
            out[key] = ([to_json_schema(sub) for sub in value] if isinstance(value, list)
                        else to_json_schema(value))
        else:
            out[key] = value
    if node.get("nullable") is True and "$ref" not in node:
        return {"anyOf": [{"type": "null"}, out]}
    return out


def _document(node: Any) -> Any:
    """The whole OpenAPI document with every schema object rewritten by `_schema`."""
    if isinstance(node, list):
        return [_document(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("example", "examples"):
            continue  # media-type examples are data, not schemas
        if key == "schema" and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key == "schemas" and isinstance(value, dict):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = _document(value)
    return out


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    rx = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{rx}$")


def _pointer(*segments: str) -> str:
    return "".join("/" + quote(s.replace("~", "~0").replace("/", "~1"), safe="~")
                   for s in segments)


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time")
@FORMATS.checks("ppaas_date_time_v3")
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _explain(error: ValidationError) -> str:
    """The error's message; for anyOf/oneOf, also the closest alternative's complaint."""
    message = _short(error.message)
    if error.context:
        closest = best_match(error.context)
        if closest is not None:
            message += f" (closest match fails at {closest.json_path}: {_short(closest.message)})"
    return message


class PayPalSpecs:
    """The four OpenAPI files, ready to look up operations and validate responses."""

    def __init__(self, directory: Path | None = None) -> None:
        base = directory or specs_dir()
        reason = missing_specs_reason(base)
        if reason:
            raise SpecsMissing(reason)
        self.directory = base
        self.documents: dict[str, dict[str, Any]] = {}
        registry: Registry[Any] = Registry()
        self.operations: list[Operation] = []
        for name in SPEC_FILES:
            doc = _document(json.loads((base / name).read_text(encoding="utf-8")))
            self.documents[name] = doc
            registry = registry.with_resource(self._uri(name), Resource(doc, DRAFT4))
            for template, item in doc.get("paths", {}).items():
                literal = sum(1 for s in template.split("/") if s and not s.startswith("{"))
                for method, op in item.items():
                    if method in ("parameters", "summary", "description", "servers"):
                        continue
                    self.operations.append(Operation(
                        spec=name, method=method.upper(), template=template,
                        operation_id=str(op.get("operationId", "")),
                        pattern=_template_regex(template), literal_segments=literal,
                    ))
        self.registry = registry.crawl()
        self.operations.sort(key=lambda o: -o.literal_segments)
        self._validators: dict[str, Draft4Validator] = {}

    @staticmethod
    def _uri(name: str) -> str:
        return f"urn:paypal-openapi:{name}"

    def find(self, method: str, path: str) -> Operation:
        """The operation documented for `method` on the concrete `path`."""
        path = path.rstrip("/") or "/"
        matches = [o for o in self.operations if o.pattern.match(path)]
        for op in matches:
            if op.method == method.upper():
                return op
        if matches:
            allowed = ", ".join(sorted({o.method for o in matches}))
            where = matches[0].template
            raise UnknownOperation(
                f"{method.upper()} {path}: PayPal documents only {allowed} on {where}")
        raise UnknownOperation(f"{method.upper()} {path}: no PayPal operation has this path")

    def _validator(self, ref: str) -> Draft4Validator:
        validator = self._validators.get(ref)
        if validator is None:
            validator = Draft4Validator({"$ref": ref}, registry=self.registry,
                                        format_checker=FORMATS)
            self._validators[ref] = validator
        return validator

    def _response(self, op: Operation, *keys: str) -> tuple[str, dict[str, Any], list[str]]:
        """(key used, response object, JSON pointer segments to it): the first of `keys` found."""
        responses = self.documents[op.spec]["paths"][op.template][op.method.lower()]["responses"]
        for key in keys:
            if key in responses:
                segments = ["paths", op.template, op.method.lower(), "responses", key]
                return key, *self._follow(op.spec, responses[key], segments)
        return "", {}, []

    def _follow(self, spec: str, node: dict[str, Any],
                segments: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Follow a response object's local `$ref`s (`#/components/responses/default`)."""
        seen = 0
        while "$ref" in node and seen < 10:
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                raise ValueError(f"{spec}: only local response $refs are supported, got {ref}")
            segments = [s.replace("~1", "/").replace("~0", "~") for s in ref[2:].split("/")]
            target: Any = self.documents[spec]
            for s in segments:
                target = target[s]
            node, seen = target, seen + 1
        return node, segments

    def _json_schema_ref(self, spec: str, response: dict[str, Any],
                         segments: list[str]) -> str | None:
        content = response.get("content") or {}
        for media in content:
            if media.split(";")[0].strip() == "application/json" and "schema" in content[media]:
                return self._uri(spec) + "#" + _pointer(*segments, "content", media, "schema")
        return None

    def _error_schema_documented(self, spec: str, status: int) -> bool:
        schemas = self.documents[spec].get("components", {}).get("schemas", {})
        return f"error_{status}" in schemas

    def validate_response(self, method: str, path: str, status: int,
                          body: Any | None) -> list[Violation]:
        """Every way `body` (parsed JSON; None = no body) breaks the documented response."""
        op = self.find(method, path)
        key, response, segments = self._response(op, str(status), f"{status // 100}XX", "default")

        def violation(where: str, message: str) -> Violation:
            return Violation(op.label, status, where, message)

        if not key:
            return [violation("$", f"status {status} is not documented and there is no default")]
        ref = self._json_schema_ref(op.spec, response, segments)
        if ref is None and body is not None and status >= 400 and key != "default":
            # e.g. Payments documents `500` without content; its body is the default error.
            key, response, segments = self._response(op, "default")
            ref = self._json_schema_ref(op.spec, response, segments) if key else None
        if ref is None:
            if body is None:
                return []
            return [violation("$", f"PayPal documents no JSON body for {key!r}, got one")]
        if body is None:
            return [violation("$", "a JSON body is documented, the response had none")]
        body, extra = self._documented_outside_spec(op, status, body)
        validator: Draft4Validator
        if key == "default" and status >= 400 and not self._error_schema_documented(op.spec,
                                                                                     status):
            validator = Draft4Validator(GENERIC_ERROR_SCHEMA)
        else:
            validator = self._validator(ref)
        errors = sorted(validator.iter_errors(body), key=lambda e: e.json_path)
        return [violation(e.json_path, _explain(e)) for e in errors] + [
            violation(where, message) for where, message in extra]

    @staticmethod
    def _documented_outside_spec(op: Operation, status: int,
                                 body: Any) -> tuple[Any, list[tuple[str, str]]]:
        """`body` without the details `DOCUMENTED_OUTSIDE_SPEC` allows here, and what is wrong
        with those details' own shape as (JSON path, message)."""
        allowed = DOCUMENTED_OUTSIDE_SPEC.get((op.operation_id, status), {})
        details = body.get("details") if isinstance(body, dict) else None
        if not allowed or not isinstance(details, list):
            return body, []
        kept, problems = [], []
        for i, detail in enumerate(details):
            if isinstance(detail, dict) and detail.get("issue") in allowed:
                problems.extend((f"$.details[{i}]{e.json_path[1:]}", _explain(e)) for e in
                                Draft4Validator(_DOCUMENTED_DETAIL_SCHEMA).iter_errors(detail))
            else:
                kept.append(detail)
        return {**body, "details": kept}, problems


@functools.cache
def load_specs(directory: str | None = None) -> PayPalSpecs:
    """The spec files from `directory` (default: `specs_dir()`), parsed once per process."""
    return PayPalSpecs(Path(directory) if directory else None)


def validate_response(method: str, path: str, status: int,
                      body_json: Any | None) -> list[Violation]:
    """Validate one response against PayPal's files; raises UnknownOperation for unknown routes."""
    return load_specs(str(specs_dir())).validate_response(method, path, status, body_json)


def check_oauth_token(status: int, body: Any) -> list[str]:
    """Problems with an answer of `POST /v1/oauth2/token` (PayPal publishes no spec file for it)."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    if status == 200:
        wanted: dict[str, type] = {
            "access_token": str, "token_type": str, "expires_in": int, "app_id": str,
            "scope": str, "nonce": str,
        }
    else:
        wanted = {"error": str, "error_description": str}
    problems = [f"{name!r} missing" if name not in body else
                f"{name!r} is {type(body[name]).__name__}, expected {kind.__name__}"
                for name, kind in wanted.items()
                if name not in body or not isinstance(body[name], kind)
                or isinstance(body[name], bool)]
    if status == 200 and not problems:
        if body["token_type"] != "Bearer":
            problems.append(f"token_type is {body['token_type']!r}, expected 'Bearer'")
        if body["expires_in"] <= 0:
            problems.append("expires_in is not positive")
        if not body["access_token"]:
            problems.append("access_token is empty")
    return problems


def is_emulator_only(path: str) -> bool:
    """Paths that are the emulator's own pages or APIs, not PayPal REST operations."""
    return any(path == p or path.startswith(p + "/") or path.startswith(p + "?")
               for p in EMULATOR_ONLY_PREFIXES)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def check_exchange(specs: PayPalSpecs, method: str, path: str, status: int,
                   content_type: str, body: bytes) -> list[Violation]:
    """Violations in one recorded HTTP exchange (method, path, status, raw response body)."""
    label = f"{method} {path}"
    if is_emulator_only(path) or status == 0 or method in ("HEAD", "OPTIONS"):
        return []
    parsed: Any | None = None
    if body.strip():
        if not _is_json(content_type):
            return [Violation(label, status, "$", f"non-JSON body ({content_type or 'no type'})")]
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            return [Violation(label, status, "$", f"body is not valid JSON: {exc}")]
    if path.rstrip("/") == OAUTH_TOKEN_PATH:
        return [Violation(f"oauth2.token {label}", status, "$", p)
                for p in check_oauth_token(status, parsed)]
    try:
        return specs.validate_response(method, path, status, parsed)
    except UnknownOperation as exc:
        if status in (404, 405):
            # PayPal answers an unknown URL or method with its generic error shape.
            errors = Draft4Validator(GENERIC_ERROR_SCHEMA).iter_errors(parsed)
            return [Violation(label, status, e.json_path, _explain(e)) for e in errors]
        return [Violation(label, status, "$", str(exc))]


def check_request_log(specs: PayPalSpecs, entries: Iterable[Any]) -> Iterator[Violation]:
    """Violations in an emulator's request log (entries whose body was recorded)."""
    for entry in entries:
        body = getattr(entry, "response_body", None)
        if body is None:
            continue  # recorded without `record_responses`
        yield from check_exchange(specs, entry.method, entry.path, entry.status,
                                  entry.content_type, body)
