"""A stage's settings on AWS: secrets from Secrets Manager, plain values from SSM, with a TTL.

`PAYWIRE_STAGE` (e.g. `prod`) names the stage. It selects the secrets (overridable by
`PAYWIRE_PAYPAL_SECRET_ID` / `PAYWIRE_APP_SECRET_ID`):

- `paywire/<stage>/paypal` = `{"environment": "sandbox"|"live", "client_id", "client_secret",
  "webhook_id", "other_webhook_ids"?}`: `environment` selects PayPal's host;
- `paywire/<stage>/app` = `{"api_keys": [...], "fulfilment_secret": "whsec_...",
  "fulfilment_url"?, "database_url"?}`;

and the SSM path `/paywire/<stage>` whose parameters `/paywire/<stage>/<setting>` (the setting's
name without `PAYWIRE_`, lower case, e.g. `/paywire/prod/return_url`) hold plain values.

Precedence, highest first: explicit overrides (`stage_settings(**overrides)`: CLI flags, tests);
the stage's secrets; its SSM parameters; `PAYWIRE_*` environment variables (and `.env`);
defaults. Secret values (the PayPal client secret, API keys, the fulfilment secret) come from
Secrets Manager only: an SSM parameter for one is refused, and an environment variable for one
is ignored (a WARNING names it). The environment the PayPal secret records is the stage's:
`PAYWIRE_PAYPAL_ENV`, if set too, must agree or start-up fails naming both (`emulator` is
accepted for offline runs such as `paywire dev --aws`). It is APS's environment too: `aps.env`
follows it, and `PAYWIRE_APS_ENV` or an SSM parameter `aps_env` that disagrees fails start-up
naming both (a live stage must not take APS test cards, nor a sandbox stage real ones).

Values are read at run time (never written into `os.environ`) and cached for
`PAYWIRE_SECRETS_TTL_SECONDS` (default 300); the first call after that re-reads them. A failed
re-read keeps serving the cached values for `PAYWIRE_SECRETS_STALE_GRACE_SECONDS` (default 900,
a WARNING each time, retried at most every 30 s), then fails; a failed first read raises
ConfigError naming the secret id and AWS's error code, never a value. Unchanged values give the
very same `Settings` object back, so a caller may rebuild what it wired only when it changes.
When the PayPal credentials are new (the first read, a rotation), a token is requested from the
stage's host: a refusal fails start-up with the sandbox/live explanation
(`paywire.bootstrap.credentials`); new credentials refused at a re-read count as a failed
refresh (the old ones keep serving).

A process reads only the secrets it needs (`reads`, and its role may read no others): the
functions that call PayPal or verify webhooks read both; the SQS consumer only the app secret
(the shop's URL and signing secret); the drainer and the stream function neither. Without the
PayPal secret the stage's environment is `PAYWIRE_PAYPAL_ENV` (the template sets it from the
stage), and the settings load as an outbox-only process's (`Purpose.OUTBOX`, said by `reads`
where the process is made, never by a variable: no provider credentials, webhook id or catalog
required, and none of them there to use).

Settings are named here as everywhere they are named rather than read: by their variable
without `PAYWIRE_`, lower case (`paypal_client_id`, `aps_access_code`), which
`Settings.setting_paths()` places in their provider's section.

`StageApiKeys` (`paywire.aws.api_keys`) reads the app secret's `api_keys`
alone, under the same TTL and grace period, for API Gateway's authorizer
(`paywire.aws.authorizer`), whose role may read nothing else. The Secrets Manager primitives
both use (client, one secret's read, freshness) are in `paywire.aws.secret_reads`.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from paywire.aws.secret_reads import (
    Freshness,
    api_keys_of,
    aws_error_code,
    boto3_client,
    of_source,
    read_secret,
)
from paywire.domain.errors import ConfigError
from paywire.settings import Purpose, Settings, StageSource, env_name

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("paywire.aws.secrets")

Clock = Callable[[], float]
ClientFactory = Callable[[str], Any]

# Settings whose values are secret: Secrets Manager only.
SECRET_FIELDS = ("paypal_client_secret", "api_keys", "fulfilment_secret", "aps_access_code",
                 "aps_request_phrase", "aps_response_phrase")
# The PayPal secret's keys and the settings they fill (`environment` is handled apart).
PAYPAL_KEYS = {"client_id": "paypal_client_id", "client_secret": "paypal_client_secret",
               "webhook_id": "paypal_webhook_id",
               "other_webhook_ids": "paypal_other_webhook_ids"}
# The app secret also holds the APS merchant account's secrets when the shop takes cards
# through APS (its merchant identifier, URLs and providers list are plain SSM parameters).
APP_KEYS = {"api_keys": "api_keys", "fulfilment_secret": "fulfilment_secret",
            "fulfilment_url": "fulfilment_url", "database_url": "database_url",
            "aps_access_code": "aps_access_code", "aps_request_phrase": "aps_request_phrase",
            "aps_response_phrase": "aps_response_phrase"}
ENVIRONMENTS = ("sandbox", "live", "emulator")
# The stage's two secrets, by the names `reads` uses.
PAYPAL_SECRET, APP_SECRET = "paypal", "app"
ALL_SECRETS = frozenset({PAYPAL_SECRET, APP_SECRET})
# Settings that choose where the others come from: never from SSM.
SOURCE_FIELDS = ("stage", "stage_environment", "paypal_env", "paypal_secret_id",
                 "app_secret_id", "secrets_ttl_seconds", "secrets_stale_grace_seconds")


@dataclass(frozen=True)
class StageValues:
    """One read of a stage's sources: settings values (secret ones as SecretStr) and the
    environment its PayPal secret records."""

    stage: str
    environment: str
    values: Mapping[str, Any]

    def __repr__(self) -> str:
        return f"StageValues(stage={self.stage!r}, environment={self.environment!r}, " \
               f"settings={sorted(self.values)!r})"


@dataclass
class _Cache:
    source: StageSource  # where the values came from: another source is another stage
    values: StageValues
    fresh: Freshness
    # ((purpose, overrides), what they built)
    built: tuple[tuple[Purpose, dict[str, Any]], Settings] | None = None


class StageSecrets:
    """Reads a stage's secrets and SSM parameters and builds its `Settings`, cached with a TTL.

    `reads` names the secrets read (see the module docstring); `clock` (monotonic seconds) and
    `clients` (service name → boto3 client) are the seams tests replace; `http` is the client
    the start-up credentials check uses (None: its own).
    """

    def __init__(self, *, reads: frozenset[str] = ALL_SECRETS, clock: Clock = time.monotonic,
                 clients: ClientFactory = boto3_client, check_credentials: bool = True,
                 http: httpx.Client | None = None) -> None:
        unknown = sorted(reads - ALL_SECRETS)
        if unknown:
            raise ValueError(f"unknown stage secrets: {', '.join(unknown)}")
        self._reads = reads
        self._clock = clock
        self._clients = clients
        self._made: dict[str, Any] = {}
        self._check_credentials = check_credentials
        self._http = http
        self._cache: _Cache | None = None
        self._checked: tuple[str, str | None, SecretStr | None] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        stage = self._cache.values.stage if self._cache is not None else None
        return f"StageSecrets(stage={stage!r}, reads={sorted(self._reads)!r})"

    def settings(self, *, purpose: Purpose = Purpose.SHOP, **overrides: Any) -> Settings:
        """The stage's settings for `purpose`: cached, re-read after the TTL (see the module
        docstring)."""
        key = (purpose, dict(overrides))  # compared by value (SecretStr too), never printed
        source = StageSource.load()
        with self._lock:
            now = self._clock()
            cache = of_source(self._cache, source)
            if cache is not None and now < cache.fresh.refresh_at:
                if cache.built is not None and cache.built[0] == key:
                    return cache.built[1]
                settings = self._build(cache.values, key)
                cache.built = (key, settings)
                return settings
            return self._refresh(source, cache, now, key)

    def _refresh(self, source: StageSource, cache: _Cache | None, now: float,
                 key: tuple[Purpose, dict[str, Any]]) -> Settings:
        try:
            values = self.read(source)
            if (cache is not None and cache.built is not None and cache.built[0] == key
                    and values == cache.values):
                settings = cache.built[1]  # unchanged: the same object back
            else:
                settings = self._build(values, key)
        except ConfigError as exc:
            if cache is None or not cache.fresh.keep_stale(now, exc, "stage settings"):
                raise
            if cache.built is None or cache.built[0] != key:
                cache.built = (key, self._build(cache.values, key))
            return cache.built[1]
        self._cache = _Cache(source, values, Freshness.read_now(source, now),
                             built=(key, settings))
        return settings

    # --- reading --------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self._clients(service)
        return self._made[service]

    def read(self, source: StageSource) -> StageValues:
        """Read the stage's two secrets and its SSM parameters (uncached); ConfigError naming
        the secret id or path and AWS's error code when one cannot be read or is malformed."""
        if source.stage is None:
            raise ConfigError("PAYWIRE_STAGE is not set: no stage to read settings for")
        values: dict[str, Any] = {}
        if PAYPAL_SECRET not in self._reads:
            environment = source.paypal_env
            if environment not in ENVIRONMENTS:
                raise ConfigError("this function reads no PayPal secret: PAYWIRE_PAYPAL_ENV must "
                                  "name the stage's environment (sandbox or live)")
            values = self._parameters(source)
            if APP_SECRET in self._reads:
                app = self._secret(source.app_secret, "PAYWIRE_APP_SECRET_ID")
                values.update(_mapped(app, APP_KEYS, source.app_secret))
            return StageValues(source.stage, str(environment), values)
        paypal = self._secret(source.paypal_secret, "PAYWIRE_PAYPAL_SECRET_ID")
        app = (self._secret(source.app_secret, "PAYWIRE_APP_SECRET_ID")
               if APP_SECRET in self._reads else {})
        environment = paypal.pop("environment", None)
        if environment not in ENVIRONMENTS:
            raise ConfigError(f"the stage secret {source.paypal_secret} must record "
                              "\"environment\": \"sandbox\" or \"live\"",
                              details={"secret_id": source.paypal_secret})
        if source.paypal_env is not None and source.paypal_env != environment:
            raise ConfigError(f"the stage secret {source.paypal_secret} records environment "
                              f"{environment} but PAYWIRE_PAYPAL_ENV is {source.paypal_env}: "
                              "make them agree (or unset PAYWIRE_PAYPAL_ENV and let the stage "
                              "choose)", details={"secret_id": source.paypal_secret})
        for name in ("client_id", "client_secret"):
            if not isinstance(paypal.get(name), str) or not paypal[name].strip():
                raise ConfigError(f"the stage secret {source.paypal_secret} has no {name}",
                                  details={"secret_id": source.paypal_secret})
        values = self._parameters(source)
        _check_aps_env(source, str(environment), values.get("aps_env"))
        values.update(_mapped(paypal, PAYPAL_KEYS, source.paypal_secret))
        values.update(_mapped(app, APP_KEYS, source.app_secret))
        return StageValues(source.stage, str(environment), values)

    def _secret(self, secret_id: str, override_var: str) -> dict[str, Any]:
        return read_secret(self._client("secretsmanager"), secret_id, override_var)

    def _parameters(self, source: StageSource) -> dict[str, Any]:
        path = source.parameters_path
        client = self._client("ssm")
        from botocore.exceptions import BotoCoreError, ClientError

        found: dict[str, Any] = {}
        try:
            pages = client.get_paginator("get_parameters_by_path").paginate(
                Path=path, Recursive=False, WithDecryption=True)
            for page in pages:
                for parameter in page.get("Parameters", []):
                    name = str(parameter["Name"]).removeprefix(path + "/")
                    found[name] = _parameter(path, name, parameter.get("Value"))
        except (ClientError, BotoCoreError) as exc:
            code = aws_error_code(exc)
            raise ConfigError(f"cannot read the stage's SSM parameters under {path}/: {code}; "
                              "grant this role ssm:GetParametersByPath on them",
                              details={"path": path, "aws_error_code": code}) from exc
        return found

    # --- building -------------------------------------------------------------------------

    def _build(self, values: StageValues, key: tuple[Purpose, dict[str, Any]]) -> Settings:
        purpose, overrides = key
        ignored = [env_name(f) for f in SECRET_FIELDS if env_name(f) in os.environ]
        if ignored:
            log.warning("%s ignored: a stage's secrets come from Secrets Manager only",
                        ", ".join(ignored))
        kwargs: dict[str, Any] = {"paypal_client_secret": None, "api_keys": [],
                                  "fulfilment_secret": None, "aps_access_code": None,
                                  "aps_request_phrase": None, "aps_response_phrase": None}
        kwargs.update(values.values)
        kwargs.update(stage=values.stage, stage_environment=values.environment,
                      paypal_env=values.environment)
        kwargs.update(overrides)
        if PAYPAL_SECRET not in self._reads:  # no provider credentials: it only moves the outbox
            return Settings.load(purpose=Purpose.OUTBOX, **kwargs)
        settings = Settings.load(purpose=purpose, **kwargs)
        if self._check_credentials and settings.startup_credentials_check:
            self._check(settings)
        return settings

    def _check(self, settings: Settings) -> None:
        from paywire.bootstrap.credentials import require_credentials

        key = (settings.paypal.url, settings.paypal.client_id, settings.paypal.client_secret)
        if key == self._checked:
            return
        if require_credentials(settings, http=self._http):
            self._checked = key


def _check_aps_env(source: StageSource, environment: str, parameter: Any) -> None:
    """APS's environment is the stage's (a live stage must not take APS test cards, nor a
    sandbox stage real ones): `PAYWIRE_APS_ENV` and the SSM parameter `aps_env`, if set, must
    agree with the environment the PayPal secret records; ConfigError naming both if not."""
    where = source.paypal_secret
    if source.aps_env is not None and source.aps_env != environment:
        raise ConfigError(f"the stage secret {where} records environment {environment} but "
                          f"PAYWIRE_APS_ENV is {source.aps_env}: a stage's APS environment is "
                          "its PayPal environment (unset PAYWIRE_APS_ENV and let the stage "
                          "choose)", details={"secret_id": where, "setting": "PAYWIRE_APS_ENV"})
    if parameter is not None and str(parameter).strip() != environment:
        name = f"{source.parameters_path}/aps_env"
        raise ConfigError(f"the stage secret {where} records environment {environment} but the "
                          f"SSM parameter {name} is {str(parameter).strip()[:16]}: a stage's APS "
                          f"environment is its PayPal environment (delete {name} and let the "
                          "stage choose)", details={"secret_id": where, "parameter": name})


def _parameter(path: str, name: str, value: Any) -> Any:
    field = name.lower()
    where = f"SSM parameter {path}/{name}"
    if field in SECRET_FIELDS:
        raise ConfigError(f"{where} holds a secret: secrets belong in the stage's secret in "
                          "AWS Secrets Manager, never in SSM", details={"parameter": name})
    if field in SOURCE_FIELDS or field not in Settings.setting_paths():
        raise ConfigError(f"{where} is not a setting paywire takes from SSM (a parameter is "
                          "named after its setting without PAYWIRE_, lower case)",
                          details={"parameter": name})
    if field == "database_url" and isinstance(value, str) and urlsplit(value).password:
        raise ConfigError(f"{where} holds a password: put database_url in the stage's app "
                          "secret instead", details={"parameter": name})
    return value


def _mapped(data: dict[str, Any], keys: dict[str, str], secret_id: str) -> dict[str, Any]:
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ConfigError(f"the stage secret {secret_id} has unknown keys: {', '.join(unknown)} "
                          f"(it takes {', '.join(sorted(keys))})",
                          details={"secret_id": secret_id})
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = keys[key]
        if field in SECRET_FIELDS:
            value = _secret_value(value, secret_id, key)
        out[field] = value
    return out


def _secret_value(value: Any, secret_id: str, key: str) -> SecretStr | list[SecretStr] | None:
    if key == "api_keys":
        return api_keys_of(value, secret_id)
    if value is None:
        return None
    if isinstance(value, str):
        return SecretStr(value) if value.strip() else None
    raise ConfigError(f"the stage secret {secret_id}: {key} must be a string",
                      details={"secret_id": secret_id})


@functools.cache
def _process_secrets(reads: frozenset[str] = ALL_SECRETS) -> StageSecrets:
    """This process's cache of its stage's secrets (a Lambda container keeps it warm)."""
    return StageSecrets(reads=reads)


def stage_settings(*, reads: frozenset[str] = ALL_SECRETS, purpose: Purpose = Purpose.SHOP,
                   **overrides: Any) -> Settings:
    """The stage's settings for this process (`PAYWIRE_STAGE`) and `purpose`, from the
    secrets `reads` names, cached with the TTL."""
    return _process_secrets(reads).settings(purpose=purpose, **overrides)


def load_settings(*, purpose: Purpose = Purpose.SHOP, **overrides: Any) -> Settings:
    """The process's settings for `purpose`: the stage's when `PAYWIRE_STAGE` is set, else
    `Settings.load`."""
    if StageSource.load().stage is not None:
        return stage_settings(purpose=purpose, **overrides)
    return Settings.load(purpose=purpose, **overrides)
