"""The shop's payment providers by name: the one seam through which services reach a provider.

Services never hold "the" provider: an order names the provider it was created at, so every
call on an order goes to `registry.of(order)`, and only a new order without a choice goes to
the default (the first the settings name). The composition root builds one registry and hands
it to each service that calls a provider, so adding a provider touches no service.
"""

from __future__ import annotations

from collections.abc import Iterator

from paywire.domain.errors import ConfigError
from paywire.domain.order import Order
from paywire.ports import PaymentProvider


class ProviderRegistry:
    """The configured providers, by name, in configured order; the first is the default."""

    def __init__(self, default: PaymentProvider, *others: PaymentProvider) -> None:
        self.default = default
        self._by_name: dict[str, PaymentProvider] = {default.name: default}
        for other in others:
            if other.name in self._by_name:
                raise ConfigError(f"payment provider {other.name!r} is configured twice")
            self._by_name[other.name] = other

    def named(self, name: str) -> PaymentProvider:
        """The configured provider called `name` (ConfigError if this shop has none)."""
        provider = self._by_name.get(name)
        if provider is None:
            raise ConfigError(f"payment provider {name!r} is not configured for this shop "
                              f"(configured: {', '.join(sorted(self._by_name))})")
        return provider

    def of(self, order: Order) -> PaymentProvider:
        """The provider `order` was created at."""
        return self.named(order.provider)

    def names(self) -> list[str]:
        """The configured providers' names, default first."""
        return list(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[PaymentProvider]:
        return iter(self._by_name.values())
