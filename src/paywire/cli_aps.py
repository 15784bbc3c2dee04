"""The APS half of `paywire emulator`: its merchant account from the command line, and what it
prints (the account, its URLs, and the `PAYWIRE_*` lines that point a paywire at it).

The account is the emulator's own throwaway one (random unless given): printing its access code
and phrases is the point, as the PayPal half prints its app's client secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

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
