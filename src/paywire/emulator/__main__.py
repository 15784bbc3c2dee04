"""`python -m paywire.emulator`: the emulator on its own, for a shop's CI or a non-paywire client.

It is what `paywire emulator` serves, started without paywire's CLI, settings or database: only
the emulator's own dependencies load (starlette, uvicorn, httpx, cryptography, jinja2; see
README.md here). The options keep `paywire emulator`'s names, so a CI job can switch between the
two; the printout names the credentials and URLs only, not paywire's `PAYWIRE_*` variables. The
emulator's throwaway credentials are printed on purpose: a client must be configured with them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from paywire.emulator.aps.config import SHA_TYPES, ApsCredentials, ApsEmulatorConfig
from paywire.emulator.config import AppCredentials, EmulatorConfig

APS_OPTIONS = ("access_code", "merchant_identifier", "request_phrase", "response_phrase")


def parser() -> argparse.ArgumentParser:
    """The command line, with `paywire emulator`'s option names and defaults."""
    p = argparse.ArgumentParser(prog="python -m paywire.emulator", description=(
        "A stateful PayPal sandbox emulator, with Amazon Payment Services under /aps."))
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    p.add_argument("--port", type=int, default=8090, help="port to listen on")
    p.add_argument("--client-id", help="sandbox app client id (random unless given)")
    p.add_argument("--client-secret", help="sandbox app client secret")
    p.add_argument("--token-ttl", type=int, default=32400, help="access token lifetime, s")
    p.add_argument("--order-expiry", type=float, default=10800, help="unapproved order life, s")
    p.add_argument("--webhook-time-scale", type=float, default=1.0,
                   help="real seconds per emulated second in webhook retries")
    p.add_argument("--seed", type=int, help="seed for fault rules and shuffles")
    for name in APS_OPTIONS:
        p.add_argument(f"--aps-{name.replace('_', '-')}",
                       help=f"APS merchant account: {name.replace('_', ' ')} (random unless given)")
    p.add_argument("--aps-sha-type", default="SHA-256", choices=SHA_TYPES,
                   help="APS merchant account: SHA type")
    p.add_argument("--aps-feedback-url",
                   help="where APS's direct and notification feedback go")
    return p


def config_from(args: argparse.Namespace) -> EmulatorConfig:
    """The configuration the options describe; ValueError names what is wrong."""
    if (args.client_id is None) != (args.client_secret is None):
        raise ValueError("give both --client-id and --client-secret, or neither")
    app = (AppCredentials(args.client_id, args.client_secret) if args.client_id
           else AppCredentials.generate())
    given = {name: getattr(args, f"aps_{name}") for name in APS_OPTIONS}
    if any(v is not None for v in given.values()) and not all(given.values()):
        raise ValueError("give all of --aps-access-code, --aps-merchant-identifier, "
                         "--aps-request-phrase and --aps-response-phrase, or none")
    creds = (ApsCredentials(**given, sha_type=args.aps_sha_type) if all(given.values())
             else ApsCredentials.generate(args.aps_sha_type))
    feedback = args.aps_feedback_url
    if feedback is not None and not feedback.startswith(("http://", "https://")):
        raise ValueError("--aps-feedback-url must be an http(s):// URL")
    aps = ApsEmulatorConfig(credentials=creds, direct_feedback_url=feedback,
                            notification_feedback_url=feedback, seed=args.seed)
    return EmulatorConfig(apps=[app], aps=aps, token_ttl_seconds=args.token_ttl,
                          order_expiry_seconds=args.order_expiry,
                          webhook_time_scale=args.webhook_time_scale, seed=args.seed)


def banner(config: EmulatorConfig, base: str) -> list[str]:
    """What a client needs to reach this emulator: URLs and the credentials it accepts."""
    app, aps = config.apps[0], config.aps.credentials
    return [
        f"PayPal emulator on {base} (control API {base}/_emulator/)",
        f"  client id:           {app.client_id}",
        f"  client secret:       {app.client_secret}",
        f"Amazon Payment Services emulator on {base}/aps (control API {base}/aps/_aps/)",
        f"  merchant identifier: {aps.merchant_identifier}",
        f"  access code:         {aps.access_code}",
        f"  SHA request phrase:  {aps.request_phrase}",
        f"  SHA response phrase: {aps.response_phrase}",
        f"  SHA type:            {aps.sha_type}",
        f"  payment page:        {base}/aps/FortAPI/paymentPage",
        f"  API:                 {base}/aps/FortAPI/paymentApi",
        f"  feedback URL:        {config.aps.direct_feedback_url or 'none'}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options, print the banner, serve until interrupted."""
    import uvicorn

    from paywire.emulator.app import create_app

    p = parser()
    args = p.parse_args(argv)
    try:
        config = config_from(args)
    except ValueError as exc:
        p.error(str(exc))
    for line in banner(config, f"http://{args.host}:{args.port}"):
        print(line, file=sys.stdout, flush=True)
    # h11 named: uvicorn's default would pick httptools where it is installed (paywire[speed]),
    # whose protocol has no bound on a request's head; the emulator imports nothing of paywire's
    # (paywire.serving keeps the bound there).
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info", http="h11")


if __name__ == "__main__":
    main()
