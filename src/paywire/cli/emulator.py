"""`paywire emulator`: the stateful PayPal sandbox emulator, with Amazon Payment Services under
`/aps`; and its APS half: the merchant account from the command line, and what it prints (the
account, its URLs, and the `PAYWIRE_*` lines that point a paywire at it).

The account is the emulator's own throwaway one (random unless given): printing its access code
and phrases is the point, as the PayPal half prints its app's client secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from paywire.cli.common import console as stdout
from paywire.emulator.aps.config import SHA_TYPES, ApsCredentials, ApsEmulatorConfig

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

APS_PREFIX = "/aps"  # where `paywire.emulator.create_app` mounts the APS emulator
DEFAULT_RETURN_URL = "http://127.0.0.1:8000/v1/aps/return"  # `paywire serve`'s default address


def emulator_config(*, access_code: str | None, merchant_identifier: str | None,
                    request_phrase: str | None, response_phrase: str | None, sha_type: str,
                    feedback_url: str | None, seed: int | None) -> ApsEmulatorConfig:
    """The APS emulator's configuration from the `--aps-*` options (BadParameter if unusable)."""
    given = (access_code, merchant_identifier, request_phrase, response_phrase)
    if sha_type not in SHA_TYPES:
        raise typer.BadParameter(f"--aps-sha-type must be one of {', '.join(SHA_TYPES)}")
    if any(v is not None for v in given) and not all(given):
        raise typer.BadParameter("give all of --aps-access-code, --aps-merchant-identifier, "
                                 "--aps-request-phrase and --aps-response-phrase, or none")
    if access_code and merchant_identifier and request_phrase and response_phrase:
        creds = ApsCredentials(access_code=access_code, merchant_identifier=merchant_identifier,
                               request_phrase=request_phrase, response_phrase=response_phrase,
                               sha_type=sha_type)
    else:
        creds = ApsCredentials.generate(sha_type)
    if feedback_url is not None and not feedback_url.startswith(("http://", "https://")):
        raise typer.BadParameter("--aps-feedback-url must be an http(s):// URL")
    return ApsEmulatorConfig(credentials=creds, direct_feedback_url=feedback_url,
                             notification_feedback_url=feedback_url, seed=seed)


def env_lines(config: ApsEmulatorConfig, base_url: str) -> Iterator[str]:
    """The `.env` lines that give a paywire this emulator's APS account (and keep PayPal)."""
    cred = config.credentials
    api = f"{base_url}{APS_PREFIX}/FortAPI"
    yield "PAYWIRE_PROVIDERS=paypal,aps"
    yield "PAYWIRE_APS_ENV=emulator"
    yield f"PAYWIRE_APS_ACCESS_CODE={cred.access_code}"
    yield f"PAYWIRE_APS_MERCHANT_IDENTIFIER={cred.merchant_identifier}"
    yield f"PAYWIRE_APS_REQUEST_PHRASE={cred.request_phrase}"
    yield f"PAYWIRE_APS_RESPONSE_PHRASE={cred.response_phrase}"
    yield f"PAYWIRE_APS_SHA_TYPE={cred.sha_type}"
    yield f"PAYWIRE_APS_API_URL={api}/paymentApi"
    yield f"PAYWIRE_APS_PAGE_URL={api}/paymentPage"
    yield "# paywire's /v1/aps/return as the buyer's browser reaches it:"
    yield f"PAYWIRE_APS_RETURN_URL={DEFAULT_RETURN_URL}"


def print_account(console: Console, config: ApsEmulatorConfig, base_url: str,
                  paypal_lines: Iterable[str] = ()) -> None:
    """Print the APS account the emulator accepts, its URLs and the lines to paste (after
    `paypal_lines`, the PayPal half's)."""
    cred = config.credentials
    aps = f"{base_url}{APS_PREFIX}"
    feedback = config.direct_feedback_url or (
        "none (start with --aps-feedback-url http://<paywire>/webhooks/aps)")
    console.print(f"[bold]Amazon Payment Services emulator[/] on {aps}", highlight=False)
    # The emulator's own throwaway merchant account: printing it is the point.
    rows = [("merchant identifier", cred.merchant_identifier),
            ("access code", cred.access_code),
            ("SHA request phrase", cred.request_phrase),
            ("SHA response phrase", cred.response_phrase),
            ("SHA type", cred.sha_type),
            ("payment page", f"{aps}/FortAPI/paymentPage"),
            ("API", f"{aps}/FortAPI/paymentApi"),
            ("feedback URL", feedback),
            ("control API", f"{aps}/_aps/")]
    for name, value in rows:
        console.print(f"  {name + ':':<21}{value}", markup=False, highlight=False,
                      soft_wrap=True)
    console.print("paste into paywire's .env to pay through this emulator (PayPal and cards):",
                  highlight=False)
    for line in (*paypal_lines, *env_lines(config, base_url)):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def emulator(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    client_id: Annotated[str | None, typer.Option(help="Sandbox app client id.")] = None,
    client_secret: Annotated[str | None, typer.Option(help="Sandbox app client secret.")] = None,
    token_ttl: Annotated[int, typer.Option(help="Access token lifetime, seconds.")] = 32400,
    order_expiry: Annotated[float, typer.Option(help="Unapproved order lifetime, s.")] = 10800,
    webhook_time_scale: Annotated[
        float, typer.Option(help="Real seconds per emulated second in webhook retries.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Seed for fault rules and shuffles.")] = None,
    aps_access_code: Annotated[str | None, typer.Option(
        help="APS merchant account: access code (random unless given).")] = None,
    aps_merchant_identifier: Annotated[str | None, typer.Option(
        help="APS merchant account: merchant identifier.")] = None,
    aps_request_phrase: Annotated[str | None, typer.Option(
        help="APS merchant account: SHA request phrase.")] = None,
    aps_response_phrase: Annotated[str | None, typer.Option(
        help="APS merchant account: SHA response phrase.")] = None,
    aps_sha_type: Annotated[str, typer.Option(
        help="APS merchant account: SHA type.")] = "SHA-256",
    aps_feedback_url: Annotated[str | None, typer.Option(
        help="Where APS's direct and notification feedback go (paywire's /webhooks/aps).")
    ] = None,
) -> None:
    """Run the stateful PayPal sandbox emulator, with Amazon Payment Services under /aps."""
    import uvicorn

    from paywire.emulator import AppCredentials, EmulatorConfig, create_app
    from paywire.serving import uvicorn_options

    if (client_id is None) != (client_secret is None):
        raise typer.BadParameter("give both --client-id and --client-secret, or neither")
    creds = (AppCredentials(client_id, client_secret) if client_id and client_secret
             else AppCredentials.generate())
    aps = emulator_config(access_code=aps_access_code, merchant_identifier=aps_merchant_identifier,
                          request_phrase=aps_request_phrase, response_phrase=aps_response_phrase,
                          sha_type=aps_sha_type, feedback_url=aps_feedback_url, seed=seed)
    cfg = EmulatorConfig(apps=[creds], aps=aps, token_ttl_seconds=token_ttl,
                         order_expiry_seconds=order_expiry,
                         webhook_time_scale=webhook_time_scale, seed=seed)
    base = f"http://{host}:{port}"
    stdout.print(f"[bold]paywire PayPal emulator[/] on {base}")
    stdout.print(f"  client id:     {creds.client_id}")
    # The emulator's own throwaway sandbox credentials: printing them is the point.
    stdout.print(f"  client secret: {creds.client_secret}")
    stdout.print(f"  control API:   {base}/_emulator/")
    print_account(stdout, aps, base, paypal_lines=(
        "PAYWIRE_PAYPAL_ENV=emulator", f"PAYWIRE_PAYPAL_BASE_URL={base}",
        f"PAYWIRE_PAYPAL_CLIENT_ID={creds.client_id}",
        f"PAYWIRE_PAYPAL_CLIENT_SECRET={creds.client_secret}"))
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info", **uvicorn_options())

