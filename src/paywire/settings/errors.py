"""How a settings error reads: each problem names its environment variable, never its value.

Start-up refuses bad settings with one `ConfigError` listing every offending variable; a value
may be a secret (a client secret, an API key, a database password), so no message quotes one.
A field of a provider's section is named by its variable too: `("paypal", "client_id")` is
`PAYWIRE_PAYPAL_CLIENT_ID`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings

from paywire.domain.errors import ConfigError


def env_name(field: str) -> str:
    """The environment variable behind a settings field."""
    return f"PAYWIRE_{field.upper()}"


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_validated(cls: type[SettingsT], overrides: dict[str, Any],
                   what: str = "invalid settings") -> SettingsT:
    """`cls(**overrides)` (the environment below the overrides), or ConfigError listing each
    offending setting by its variable, never quoting a value."""
    try:
        return cls(**overrides)
    except PydanticValidationError as exc:
        problems = _problems(exc, cls)
        raise ConfigError(f"{what}: " + "; ".join(problems),
                          details={"problems": problems}) from None


def _problems(exc: PydanticValidationError, cls: type[BaseSettings]) -> list[str]:
    """Each validation error as one line naming its setting, never quoting a value."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        ctx_error = (err.get("ctx") or {}).get("error")
        message = str(ctx_error) if ctx_error is not None else err["msg"]
        loc = [str(part) for part in err["loc"]]
        if loc and not message.startswith("PAYWIRE_"):
            message = f"{env_name(setting_of(cls, loc))}: {message}"
        problems.append(message)
    return problems


def setting_of(cls: type[BaseSettings], loc: list[str]) -> str:
    """The setting an error's location is in: its first part, or its first two when the first
    is a section (a field whose value is a model: `paypal`, `aps`)."""
    field = cls.model_fields.get(loc[0])
    section = field is not None and isinstance(field.annotation, type) and issubclass(
        field.annotation, BaseModel)
    return "_".join(loc[:2]) if section and len(loc) > 1 else loc[0]
