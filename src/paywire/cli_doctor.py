"""`paywire doctor`: is this paywire set up right, and if not, the exact fix.

Checks, in order: settings load (a stage's from its secrets in AWS, when `PAYWIRE_STAGE` is
set); the database is reachable and its schema current; PayPal takes the credentials (one token
request to the configured host; a refusal is explained as a sandbox/live mix-up naming the host
and the environment claimed, see `paywire.credentials_check`); the configured webhook
id exists at PayPal with our URL and the event types paywire acts on; the webhook certificate
trust model in use (docs/webhook-trust.md) and whether PayPal's certificate host answers over
verified TLS (only hosts on the allowlist are contacted; a short deadline, so an offline machine
gets its answer at once); the outbox backlog; orders flagged as
needing attention; webhook deliveries refused in the last day with their explained causes; and,
when `aps` is in PAYWIRE_PROVIDERS, Amazon Payment Services (`paywire.cli_doctor_aps`: the
account's settings, the signature self-test, a CHECK_STATUS naming a wrong credential or
phrase, the feedback URL to enter in APS's dashboard). The PayPal checks are skipped when
`paypal` is not in PAYWIRE_PROVIDERS. Exit 1 when any check fails (`--strict`: or warns).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated
from urllib.parse import parse_qs, urlsplit

import httpx
import typer
from rich.table import Table

from paywire.cli_common import console, emit_json
from paywire.cli_paypal import WEBHOOK_ID_VAR, webhooks_api
from paywire.credentials_check import check_credentials
from paywire.domain.errors import ConfigError, PaywireError, ProviderError
from paywire.providers.paypal.webhook_signature import CERT_PATH_PREFIX

if TYPE_CHECKING:
    from paywire.ports import OpsUnitOfWork
    from paywire.providers.paypal.webhooks_api import WebhooksApi
    from paywire.settings import Settings

PENDING_BACKLOG = 1000  # pending messages beyond which the worker is probably not running
ATTENTION_SCAN = 5000  # newest orders scanned for needs-attention flags
REJECTIONS_WINDOW = timedelta(hours=24)
REGISTER = "paywire webhooks register --url https://<your-host>/webhooks/paypal --env-file .env"
CERT_PROBE_SECONDS = 5.0  # the certificate host check's cap, whatever the fetch timeout


@dataclass
class Check:
    """One check's verdict: ok | warn | fail | skip, what was found and how to fix it."""

    name: str
    status: str
    detail: str
    fix: str = ""


def doctor(
    url: Annotated[str | None, typer.Option(
        help="paywire's public webhook URL, to compare with PayPal's subscription.")] = None,
    aps_url: Annotated[str | None, typer.Option(
        "--aps-feedback-url", help="paywire's public APS feedback URL (default: "
        "PAYWIRE_APS_RETURN_URL's base + /webhooks/aps).")] = None,
    strict: Annotated[bool, typer.Option(help="Warnings fail too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check settings, database, PayPal and APS credentials, webhooks, certs, outbox, orders."""
    settings, check = _settings()
    checks = [check]
    if settings is not None:
        checks += asyncio.run(_all(settings, url, aps_url))
    bad = {"fail", "warn"} if strict else {"fail"}
    failed = any(c.status in bad for c in checks)
    if as_json:
        emit_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        _print(checks, failed)
    if failed:
        raise typer.Exit(code=1)


def _settings() -> tuple[Settings | None, Check]:
    """The settings (a stage's read from AWS without the start-up token request: the
    credentials check below asks), and the verdict on loading them."""
    from paywire.settings import Settings, StageSource

    stage: str | None = None
    try:
        stage = StageSource.load().stage
        if stage is None:
            settings = Settings.load()
        else:
            from paywire.aws.secrets import StageSecrets

            settings = StageSecrets(check_credentials=False).settings()
    except ConfigError as exc:
        fix = ("create or correct the stage's secret named (its JSON keys, its environment), "
               "or this role's access to it" if stage is not None else
               "set the named PAYWIRE_* variable (environment or .env)")
        return None, Check("settings", "fail", exc.message, fix)
    found = (f"providers {','.join(settings.providers)}; PayPal {settings.paypal_env} at "
             f"{settings.paypal_url}; store {settings.database_url_redacted}")
    if settings.stage is not None:
        found = (f"stage {settings.stage} (secrets {settings.paypal_secret_name}, "
                 f"{settings.app_secret_name}): {found}")
    return settings, Check("settings", "ok", found)


def _print(checks: list[Check], failed: bool) -> None:
    colour = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
    table = Table(title="paywire doctor")
    table.add_column("check", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("found")
    table.add_column("fix")
    for c in checks:
        table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail, c.fix)
    console.print(table, highlight=False)
    console.print("[red]something is wrong: see the fixes above[/]" if failed
                  else "[green]all good[/]")


async def _all(settings: Settings, url: str | None, aps_url: str | None) -> list[Check]:
    checks = [await asyncio.to_thread(_database, settings)]
    if checks[0].status == "ok":
        checks += await _store(settings)
    else:
        checks += [Check(n, "skip", "the database is not usable") for n in
                   ("outbox", "orders", "rejections")]
    if "paypal" in settings.providers:
        checks += await _paypal(settings, url)
        checks.append(await certs_check(settings))
    else:
        checks += [Check(n, "skip", "paypal is not in PAYWIRE_PROVIDERS")
                   for n in ("credentials", "webhook", "certs")]
    if "aps" in settings.providers:
        from paywire.cli_doctor_aps import aps_checks

        checks += await aps_checks(settings, aps_url)
    return checks


def _database(settings: Settings) -> Check:
    if settings.is_dynamodb:
        return _dynamodb(settings)
    from sqlalchemy.exc import SQLAlchemyError

    from paywire.store import migrate

    try:
        problems = migrate.check(settings.database_url)
    except (SQLAlchemyError, PaywireError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        return Check("database", "fail", f"{settings.database_url_redacted} is unreachable: "
                     f"{type(exc).__name__}: {reason}",
                     "start the database or correct PAYWIRE_DATABASE_URL")
    if problems:
        return Check("database", "fail", "; ".join(problems),
                     "run `paywire migrate` (a deploy step; SQLite is migrated by `paywire "
                     "serve` too)")
    return Check("database", "ok", "reachable; schema at the code's revision")


def _dynamodb(settings: Settings) -> Check:
    """The table is ACTIVE with paywire's key schema and indexes, and TTL is on its attribute."""
    from botocore.exceptions import BotoCoreError, ClientError

    from paywire.aws.secrets import aws_error_code
    from paywire.store.dynamo import TTL_ATTRIBUTE, make_client, table_definition

    table = settings.dynamodb_table or ""
    options = {k: v[-1] for k, v in parse_qs(urlsplit(settings.database_url).query).items()}
    setup = "run `paywire migrate` (it creates the table, its indexes and TTL) or deploy the stack"
    try:
        client = make_client(endpoint_url=options.get("endpoint_url"),
                             region=options.get("region"))
    except ConfigError as exc:
        return Check("database", "fail", exc.message, "set AWS_REGION")
    try:
        described = client.describe_table(TableName=table)["Table"]
        ttl = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    except (ClientError, BotoCoreError) as exc:
        code = aws_error_code(exc)
        fix = (setup if code == "ResourceNotFoundException" else "check the AWS credentials, "
               "AWS_REGION / AWS_ENDPOINT_URL and this role's dynamodb:DescribeTable")
        return Check("database", "fail", f"DynamoDB table {table}: {code}", fix)
    finally:
        client.close()
    wanted = table_definition(table)
    problems = []
    if described.get("TableStatus") != "ACTIVE":
        problems.append(f"it is {described.get('TableStatus')}, not ACTIVE")
    if described.get("KeySchema") != wanted["KeySchema"]:
        problems.append("its key schema is not paywire's (pk, sk)")
    have = {i.get("IndexName") for i in described.get("GlobalSecondaryIndexes") or []}
    missing = sorted({i["IndexName"] for i in wanted["GlobalSecondaryIndexes"]} - have)
    if missing:
        problems.append(f"it lacks the index(es) {', '.join(missing)}")
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or (
            ttl.get("AttributeName") != TTL_ATTRIBUTE):
        problems.append(f"TTL is not enabled on {TTL_ATTRIBUTE} (idempotency keys and "
                        "rejections would never expire)")
    if problems:
        return Check("database", "fail", f"DynamoDB table {table}: " + "; ".join(problems),
                     setup)
    return Check("database", "ok", f"DynamoDB table {table} ACTIVE; indexes and TTL on "
                 f"{TTL_ATTRIBUTE} in place")


async def _store(settings: Settings) -> list[Check]:
    from paywire.bootstrap import store_for

    try:
        store = store_for(settings)
    except ConfigError as exc:
        return [Check("store", "fail", exc.message, "check PAYWIRE_DATABASE_URL")]
    try:
        async with store.transaction() as uow:
            return [await _outbox(uow), await _attention(uow), await _rejections(uow)]
    except PaywireError as exc:
        return [Check("store", "fail", exc.message, "check the database")]
    finally:
        await store.close()


async def _outbox(uow: OpsUnitOfWork) -> Check:
    counts = await uow.outbox_counts()
    dead, pending = counts.get("dead", 0), counts.get("pending", 0)
    found = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "empty"
    if dead:
        return Check("outbox", "fail", f"{dead} message(s) dead (gave up delivering): {found}",
                     "`paywire outbox list --status dead` shows why; fix the shop's endpoint, "
                     "then `paywire outbox retry ID` for each")
    if pending > PENDING_BACKLOG:
        return Check("outbox", "warn", f"{pending} messages pending: {found}",
                     "is a worker running? start `paywire worker` (or `serve --worker`)")
    return Check("outbox", "ok", found)


async def _attention(uow: OpsUnitOfWork) -> Check:
    flagged: list[str] = []
    before = None
    scanned = 0
    while scanned < ATTENTION_SCAN:
        page = await uow.list_orders(limit=500, before=before)
        if not page:
            break
        scanned += len(page)
        flagged += [f"{o.id} ({o.status}: {o.needs_attention})" for o in page
                    if o.needs_attention]
        before = (page[-1].created_at, page[-1].id)
    if flagged:
        shown = "; ".join(flagged[:5]) + (f"; and {len(flagged) - 5} more"
                                          if len(flagged) > 5 else "")
        return Check("orders", "fail", f"{len(flagged)} order(s) need attention: {shown}",
                     "look at each with `paywire orders show ID` and settle it at its "
                     "provider (PayPal or APS); `paywire reconcile` asks the provider again")
    return Check("orders", "ok", f"none of the newest {scanned} needs attention")


async def _rejections(uow: OpsUnitOfWork) -> Check:
    from paywire.cli_doctor_aps import is_probe

    since = datetime.now(UTC) - REJECTIONS_WINDOW
    recent = [r for r in await uow.list_rejections(limit=200)
              if r.received_at >= since and not is_probe(r)]
    if not recent:
        return Check("rejections", "ok", "no webhook delivery refused in the last 24 h")
    causes: dict[str, int] = {}
    for r in recent:
        key = f"{r.check}: {r.likely_cause or r.reason}"
        causes[key] = causes.get(key, 0) + 1
    found = "; ".join(f"{n}x {cause}" for cause, n in sorted(causes.items(),
                                                              key=lambda kv: -kv[1]))
    return Check("rejections", "warn", f"{len(recent)} refused in the last 24 h: {found}",
                 "fix the likely cause named; `paywire rejections list` has each one")


async def _paypal(settings: Settings, url: str | None) -> list[Check]:
    if settings.paypal_client_id is None or settings.paypal_client_secret is None:
        return [Check("credentials", "fail", "no PayPal client id/secret configured",
                      "set PAYWIRE_PAYPAL_CLIENT_ID and PAYWIRE_PAYPAL_CLIENT_SECRET"),
                Check("webhook", "skip", "no credentials to ask PayPal with")]
    verdict = await asyncio.to_thread(check_credentials, settings)
    if verdict.outcome != "ok":
        return [Check("credentials", "fail", verdict.detail, verdict.fix),
                Check("webhook", "skip", "PayPal did not take the credentials")]
    creds = Check("credentials", "ok", verdict.detail)
    api = webhooks_api(settings)
    try:
        return [creds, await _webhook(settings, api, url)]
    except ProviderError as exc:
        return [creds, Check("webhook", "fail", exc.message, "retry; check PayPal status")]
    finally:
        await api.aclose()


async def _webhook(settings: Settings, api: WebhooksApi, url: str | None) -> Check:
    from paywire.providers.paypal.events import EVENTS

    ours = settings.paypal_webhook_id
    var = (WEBHOOK_ID_VAR if settings.stage is None
           else f"webhook_id of the secret {settings.paypal_secret_name}")
    if ours is None:
        return Check("webhook", "fail", f"{var} is not set: every delivery is refused",
                     REGISTER)
    hook = await api.get(ours)
    if hook is None:
        return Check("webhook", "fail", f"{var}={ours} is not a webhook of this app "
                     f"at PayPal ({settings.paypal_env}); every delivery is refused",
                     f"{REGISTER} (or, if it belongs to the other environment, use this "
                     "environment's webhook id)")
    problems: list[str] = []
    if url is not None and hook.url.rstrip("/") != url.rstrip("/"):
        problems.append(f"it delivers to {hook.url}, not {url}")
    elif not hook.url.rstrip("/").endswith("/webhooks/paypal"):
        problems.append(f"its URL {hook.url} is not a paywire webhook endpoint "
                        "(…/webhooks/paypal)")
    missing = [] if "*" in hook.event_types else sorted(set(EVENTS) - set(hook.event_types))
    if missing:
        problems.append(f"it does not subscribe to {', '.join(missing)}")
    if problems:
        return Check("webhook", "fail", f"webhook {ours}: " + "; ".join(problems),
                     f"`paywire webhooks delete {ours}`, then {REGISTER} --events '*'")
    return Check("webhook", "ok", f"{ours} delivers to {hook.url} "
                 f"({', '.join(hook.event_types)})")


def trust_model(settings: Settings) -> str:
    """How webhook signing certificates are trusted under `settings`, in a phrase."""
    if settings.cert_trust == "fetched":
        return ("trust fetched: PayPal's signing certificate is trusted as fetched over verified "
                "TLS from its allowlisted hosts (names, dates and key usage checked)")
    if settings.webhook_ca_bundle is not None:
        return (f"trust bundle: the signing certificate must chain to PAYWIRE_WEBHOOK_CA_BUNDLE="
                f"{settings.webhook_ca_bundle}")
    return f"trust bundle: the emulator's CA from {settings.emulator_ca_url}"


async def probe_cert_host(url: str, seconds: float, *,
                          verify: ssl.SSLContext | bool = True) -> str | None:
    """None when `url` answers at all (any status) over verified TLS, else what went wrong:
    "TLS verification failed (...)", "unreachable: DNS lookup failed", ... within `seconds`."""
    from paywire.providers.paypal.webhook_verifier import fetch_failure

    try:
        async with asyncio.timeout(seconds), httpx.AsyncClient(
                timeout=seconds, trust_env=False, follow_redirects=False,
                verify=verify) as http:
            await http.get(url)
    except TimeoutError:
        return f"unreachable: no answer within {seconds:g} s"
    except httpx.HTTPError as exc:
        why = fetch_failure(exc)
        return why if why.startswith("TLS") else f"unreachable: {why}"
    return None


async def certs_check(settings: Settings) -> Check:
    """The trust model, and whether the certificate host (the emulator's CA URL in emulator
    mode) can be reached the way deliveries will need it."""
    model = trust_model(settings)
    timeout = min(settings.webhook_cert_timeout_seconds, CERT_PROBE_SECONDS)
    if settings.emulator_ca_url is not None:
        target = settings.emulator_ca_url
        try:
            async with httpx.AsyncClient(timeout=timeout, trust_env=False,
                                         follow_redirects=False) as http:
                resp = await http.get(target)
        except httpx.HTTPError as exc:
            return Check("certs", "fail", f"{model}; {target} unreachable: "
                         f"{type(exc).__name__}", "start the emulator, or correct "
                         "PAYWIRE_PAYPAL_BASE_URL")
        if resp.status_code != 200:
            return Check("certs", "fail", f"{model}; {target} answered {resp.status_code}",
                         "start the emulator, or correct PAYWIRE_PAYPAL_BASE_URL")
        return Check("certs", "ok", f"{model}; {target} reachable")
    https_hosts, _ = settings.cert_hosts
    sandbox = settings.paypal_env == "sandbox"
    hosts = [h for h in https_hosts if ("sandbox" in h) == sandbox] or https_hosts
    if not hosts:
        return Check("certs", "fail", f"{model}; no certificate host is allowed",
                     "set PAYWIRE_WEBHOOK_CERT_HOSTS")
    target = f"https://{hosts[0]}{CERT_PATH_PREFIX}"
    problem = await probe_cert_host(target, timeout)
    if problem is None:
        return Check("certs", "ok", f"{model}; {target} reachable over verified TLS")
    if problem.startswith("TLS"):
        fix = ("something on the way presents a certificate this machine's CA roots (certifi) "
               "do not trust -- a TLS-intercepting proxy or firewall, or an outdated certifi: "
               f"let paywire reach {hosts[0]} directly or upgrade certifi. Until then every "
               "delivery is answered 503 (PayPal retries for 3 days)")
    else:
        fix = (f"allow outbound DNS and HTTPS (443) to {hosts[0]} from this host (firewall, "
               "egress rules, DNS). Until then every delivery is answered 503 and PayPal "
               "retries it for 3 days")
    return Check("certs", "fail", f"{model}; {target} {problem}", fix)
