"""Schemathesis over paywire's own OpenAPI document, served over real HTTP.

paywire runs as in production (`apikit.serve`: real store, real PayPal client) against the
emulator; the schema is loaded from its `/openapi.json`. Every operation gets a capped number of
generated requests, schema-valid and schema-breaking (derandomized under CI), sent with an admin
API key, and each answer must be
no server error and conform to the document: a documented status code, its content type and its
body schema.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.openapi import from_url
from schemathesis.specs.openapi.schemas import OpenApiSchema

from apikit import ADMIN, serve, sqlite_url
from apskit import aps_overrides
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.testing import EmulatorServer
from testkit import CLIENT_ID, CLIENT_SECRET, IN_CI

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def paywire_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenApiSchema]:
    """paywire's OpenAPI document, loaded from a running paywire over HTTP."""
    work = tmp_path_factory.mktemp("schemathesis")
    emulator = EmulatorServer(EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)],
                                             webhook_time_scale=0.001, seed=99))
    emulator.start()
    try:
        with serve(emulator, sqlite_url(work), work, truth_fetch_enabled=False,
                   paypal_webhook_id="WH-SCHEMATHESIS", **aps_overrides(emulator)) as pw:
            yield from_url(f"{pw.url}/openapi.json")
    finally:
        emulator.stop()


# Every operation in the document; `test_the_sweep_covers_every_operation` keeps this complete.
OPERATIONS = [
    "GET /v1/catalog", "POST /v1/checkout/orders", "POST /v1/checkout/orders/{order_id}/capture",
    "POST /v1/checkout/orders/{order_id}/authorize", "GET /v1/orders/{order_id}", "GET /v1/orders",
    "POST /v1/orders/{order_id}/refunds", "POST /v1/orders/{order_id}/capture",
    "POST /v1/orders/{order_id}/void", "GET /healthz", "GET /readyz",
    "POST /webhooks/{provider}",
    "GET /v1/admin/webhook-rejections", "GET /v1/admin/truth-tasks",
]

# Operations without any parameter or body: there is nothing to send them that breaks the schema.
NO_INPUT = frozenset({"GET /v1/catalog", "GET /healthz", "GET /readyz"})


def test_the_sweep_covers_every_operation(paywire_schema: OpenApiSchema) -> None:
    """The parametrised list below is every operation the served document declares."""
    served = [op.ok().label for op in paywire_schema.get_all_operations()]
    assert sorted(served) == sorted(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), [
    *((label, GenerationMode.POSITIVE) for label in OPERATIONS),
    *((label, GenerationMode.NEGATIVE) for label in OPERATIONS if label not in NO_INPUT)])
def test_every_operation_conforms_and_never_errors(paywire_schema: OpenApiSchema, label: str,
                                                   mode: GenerationMode) -> None:
    """Any generated request: no 5xx, and the answer is what the document says it may be."""
    sweep(paywire_schema, label, mode)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("provider", ["paypal", "aps"])
def test_each_offered_providers_deliveries_conform(paywire_schema: OpenApiSchema,
                                                   provider: str, mode: GenerationMode) -> None:
    """The delivery route at each provider the shop offers (generated names seldom hit one):
    any generated body and headers, no 5xx, the answer as documented."""
    sweep(paywire_schema, "POST /webhooks/{provider}", mode, provider=provider)


def sweep(schema: OpenApiSchema, label: str, mode: GenerationMode, *,
          provider: str | None = None) -> None:
    """Send an operation's generated requests (with `provider` as the path's provider, if
    given) and check each answer."""
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label

    @settings(max_examples=25, deadline=None, derandomize=IN_CI, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        if provider is not None:
            case.path_parameters = {**(case.path_parameters or {}), "provider": provider}
        answer = case.call_and_validate(headers=ADMIN, checks=CHECKS, timeout=30)
        # At an offered provider the delivery reaches its ingest (never the route's 404).
        assert provider is None or answer.status_code != 404, answer.text

    run()
