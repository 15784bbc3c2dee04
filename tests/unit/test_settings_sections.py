"""Provider sections (`settings.paypal`, `settings.aps`) under the flat variable names, and the
purposes that relax what a process needs (arguments of the load, never variables)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource

from paywire.domain.errors import ConfigError
from paywire.settings import (
    DEMO_CATALOG,
    ApsSettings,
    PayPalSettings,
    ProviderSettings,
    Purpose,
    Settings,
    env_name,
)

LIVE = {"paypal_env": "live", "paypal_client_id": "id", "paypal_client_secret": "s3cr3t-value",
        "paypal_webhook_id": "WH-LIVE", "catalog_path": DEMO_CATALOG}
APS = {"aps_access_code": "ACCESS-1", "aps_merchant_identifier": "MERCH-1",
       "aps_request_phrase": "REQ-PHRASE-1", "aps_response_phrase": "RESP-PHRASE-1",
       "aps_return_url": "https://shop.example/v1/aps/return"}


@pytest.fixture(autouse=True)
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PAYWIRE_* a developer may have set, and no stray .env."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("PAYWIRE_")]:
        monkeypatch.delenv(name)


def at(data: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` in nested dicts (None where a part is missing)."""
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def refused(**values: Any) -> str:
    """The ConfigError message for settings that must not load."""
    with pytest.raises(ConfigError) as info:
        Settings.load(_env_file=None, **values)
    return info.value.message


def test_every_setting_has_one_name_and_a_section_field_is_named_after_its_section() -> None:
    """Each setting's name is its variable without PAYWIRE_; a section's fields are
    `<section>_<field>`; the stage's secret id stays a top-level setting."""
    paths = Settings.setting_paths()
    assert paths["paypal_client_id"] == ("paypal", "client_id")
    assert paths["aps_access_code"] == ("aps", "access_code")
    assert paths["paypal_secret_id"] == ("paypal_secret_id",)
    assert paths["outbox_max_age_seconds"] == ("outbox_max_age_seconds",)
    sections = {"paypal": PayPalSettings, "aps": ApsSettings}
    for section, model in sections.items():
        assert {f"{section}_{field}" for field in model.model_fields} <= set(paths)
        assert section not in paths  # a section is no setting of its own
    top = set(Settings.model_fields) - set(sections)
    assert {name for name, path in paths.items() if len(path) == 1} == top


def test_a_section_field_named_like_a_setting_is_refused() -> None:
    """Two settings of one variable cannot be declared: `paypal.secret_id` beside the
    top-level `paypal_secret_id` is refused when the names are listed."""

    class Clashing(ProviderSettings):
        secret_id: str | None = None

    class ClashingSettings(Settings):
        paypal: Clashing = Field(default_factory=Clashing)  # type: ignore[assignment]

    with pytest.raises(TypeError, match="paypal_secret_id"):
        ClashingSettings.setting_paths()


@pytest.mark.parametrize("source", ["environment", ".env"])
def test_every_setting_is_read_from_its_own_variable(source: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every setting's variable, set at once, reaches that setting's place and no other: a
    section's under the section, a top-level name with underscores whole."""
    paths = Settings.setting_paths()
    values = {name: f"v-{name}" for name in paths}
    if source == "environment":
        for name, value in values.items():
            monkeypatch.setenv(env_name(name), value)
        data = EnvSettingsSource(Settings)()
    else:
        env = tmp_path / "vars.env"
        env.write_text("".join(f"{env_name(n)}={v}\n" for n, v in values.items()),
                       encoding="utf-8")
        data = DotEnvSettingsSource(Settings, env_file=env)()
    assert {name: at(data, path) for name, path in paths.items()} == values
    assert set(data) - set(Settings.model_fields) == set()


def test_sections_load_from_env_file_environment_and_overrides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .env file fills both sections (lists given as "a,b", secrets hidden); the
    environment wins over it, an override over both, and the rest of a section stays."""
    env = tmp_path / ".env"
    env.write_text("PAYWIRE_PROVIDERS=paypal,aps\n"
                   "PAYWIRE_PAYPAL_ENV=sandbox\n"
                   "PAYWIRE_PAYPAL_CLIENT_ID=from-file\n"
                   "PAYWIRE_PAYPAL_CLIENT_SECRET=file-secret-value\n"
                   "PAYWIRE_PAYPAL_WEBHOOK_ID=WH-OURS\n"
                   "PAYWIRE_PAYPAL_OTHER_WEBHOOK_IDS=WH-A, WH-B\n"
                   "PAYWIRE_PAYPAL_TIMEOUT_SECONDS=7.5\n"
                   "PAYWIRE_PAYPAL_SECRET_ID=team/paypal\n"
                   "PAYWIRE_APS_ENV=sandbox\n"
                   "PAYWIRE_APS_ACCESS_CODE=ACCESS-FILE\n"
                   "PAYWIRE_APS_MERCHANT_IDENTIFIER=MERCH-FILE\n"
                   "PAYWIRE_APS_REQUEST_PHRASE=REQ-FILE-PHRASE\n"
                   "PAYWIRE_APS_RESPONSE_PHRASE=RESP-FILE-PHRASE\n"
                   "PAYWIRE_APS_RETURN_URL=https://shop.example/v1/aps/return\n"
                   "PAYWIRE_APS_LANGUAGE=ar\n"
                   f"PAYWIRE_CATALOG_PATH={DEMO_CATALOG}\n"
                   "PAYWIRE_DATA_DIR=/srv/paywire\n"
                   "PAYWIRE_OUTBOX_MAX_AGE_SECONDS=86400\n"
                   "PAYWIRE_WEBHOOK_CONFIRM_INLINE=false\n"
                   "PAYWIRE_WEBHOOK_CONFIRM_INLINE_TIMEOUT_SECONDS=3\n", encoding="utf-8")
    monkeypatch.setenv("PAYWIRE_PAYPAL_CLIENT_ID", "from-environment")
    monkeypatch.setenv("PAYWIRE_APS_TIMEOUT_SECONDS", "12")
    s = Settings.load(_env_file=env, paypal_timeout_seconds=9, aps_checkout="tokenization")
    assert (s.paypal.env, s.paypal.client_id, s.paypal.webhook_id) == (
        "sandbox", "from-environment", "WH-OURS")
    assert s.paypal.client_secret is not None
    assert s.paypal.client_secret.get_secret_value() == "file-secret-value"
    assert s.paypal.other_webhook_ids == ["WH-A", "WH-B"]
    assert s.paypal.timeout_seconds == 9 and s.paypal_secret_id == "team/paypal"
    assert (s.aps.env, s.aps.language, s.aps.timeout_seconds, s.aps.checkout) == (
        "sandbox", "ar", 12, "tokenization")
    assert s.aps.request_phrase is not None
    assert s.aps.request_phrase.get_secret_value() == "REQ-FILE-PHRASE"
    assert (s.data_dir, s.outbox_max_age_seconds) == (Path("/srv/paywire"), 86400)
    assert (s.webhook_confirm_inline, s.webhook_confirm_inline_timeout_seconds) == (False, 3)
    assert s.aps.urls(s.paypal)[0] == "https://sbpaymentservices.payfort.com/FortAPI/paymentApi"
    for text in (repr(s), str(s), repr(s.paypal), repr(s.aps)):
        for secret in ("file-secret-value", "ACCESS-FILE", "REQ-FILE-PHRASE", "RESP-FILE-PHRASE"):
            assert secret not in text


def test_a_section_field_is_refused_by_its_variable_never_by_its_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value in a section names its variable (from the environment or an override) and
    never quotes what was given."""
    monkeypatch.setenv("PAYWIRE_APS_LANGUAGE", "fr-secretish")
    message = refused(paypal_timeout_seconds=0, paypal_max_retries="hunter2-ish")
    assert "PAYWIRE_PAYPAL_TIMEOUT_SECONDS" in message
    assert "PAYWIRE_PAYPAL_MAX_RETRIES" in message and "PAYWIRE_APS_LANGUAGE" in message
    assert "hunter2" not in message and "secretish" not in message


def test_a_stage_aps_environment_set_or_not_is_told_apart() -> None:
    """Whether PAYWIRE_APS_ENV was given (the stage check needs it) survives the section."""
    unset = Settings.load(_env_file=None)
    assert "env" not in unset.aps.model_fields_set
    given = Settings.load(_env_file=None, aps_env="emulator")
    assert "env" in given.aps.model_fields_set


@pytest.mark.parametrize("claim", [{"PAYWIRE_PURPOSE": "outbox"},
                                   {"PAYWIRE_PURPOSE": "webhook_setup"},
                                   {"PAYWIRE_OUTBOX_ONLY": "true"},
                                   {"PAYWIRE_WEBHOOK_SETUP": "true"}])
def test_no_variable_can_claim_a_purpose(claim: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A purpose is the load's argument: a variable (or .env line) naming one relaxes nothing,
    and settings that load are a shop's."""
    for name, value in claim.items():
        monkeypatch.setenv(name, value)
    bare = {k: v for k, v in LIVE.items() if k not in ("paypal_client_secret", "catalog_path")}
    assert "PAYWIRE_PAYPAL_CLIENT_SECRET" in refused(**bare)
    assert Settings.load(_env_file=None).purpose is Purpose.SHOP


def test_each_purpose_relaxes_only_what_it_names() -> None:
    """The webhook commands load without a webhook id or catalog but not without credentials;
    an outbox process without any provider credentials; neither lets a bad URL through."""
    no_id = {k: v for k, v in LIVE.items() if k not in ("paypal_webhook_id", "catalog_path")}
    setup = Settings.load(_env_file=None, purpose=Purpose.WEBHOOK_SETUP, **no_id)
    assert setup.purpose is Purpose.WEBHOOK_SETUP and setup.paypal.webhook_id is None
    with pytest.raises(ConfigError, match="PAYWIRE_PAYPAL_CLIENT_ID"):
        Settings.load(_env_file=None, purpose=Purpose.WEBHOOK_SETUP,
                      **{**no_id, "paypal_client_id": ""})
    bare = {"paypal_env": "live", "aps_env": "live", "providers": "paypal,aps"}
    outbox = Settings.load(_env_file=None, purpose=Purpose.OUTBOX, **bare)
    assert outbox.purpose is Purpose.OUTBOX and outbox.paypal.client_id is None
    assert outbox.is_live and outbox.aps.access_code is None
    with pytest.raises(ConfigError, match="PAYWIRE_PAYPAL_BASE_URL"):
        Settings.load(_env_file=None, purpose=Purpose.OUTBOX,
                      paypal_base_url="https://api-m.sandbox.paypal.com", **bare)
    assert "PAYWIRE_PAYPAL_WEBHOOK_ID" in refused(**{**LIVE, "paypal_webhook_id": ""})


def test_live_and_emulated_ask_the_offered_providers_only() -> None:
    """A provider not offered neither makes the shop live nor keeps it off the emulator."""
    aps_live = {**APS, "aps_env": "live", "aps_return_url": "https://shop.example/return",
                "catalog_path": DEMO_CATALOG}
    paypal_only = Settings.load(_env_file=None, **aps_live)
    assert not paypal_only.is_live and paypal_only.is_emulated
    assert list(paypal_only.provider_settings) == ["paypal"]
    both = Settings.load(_env_file=None, providers="paypal,aps", **aps_live)
    assert both.is_live and not both.is_emulated
    assert both.provider_settings == {"paypal": both.paypal, "aps": both.aps}
