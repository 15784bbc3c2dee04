"""Money as integer minor units of an ISO 4217 currency. Never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass

from paywire.domain.errors import ValidationError

# ISO 4217 minor-unit exponents of active currencies (funds codes and metals left out).
ISO_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN "
        "BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
        "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP "
        "LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR "
        "NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP "
        "STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW "
        "ZWG".split(), 2),
    **dict.fromkeys("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(),
                    0),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    "CLF": 4, "UYW": 4,
}

_DECIMAL = re.compile(r"^(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")


def exponent(currency: str) -> int:
    """Decimal places of `currency` under ISO 4217; ValidationError if unknown."""
    try:
        return ISO_EXPONENTS[currency]
    except KeyError:
        raise ValidationError(f"unknown ISO 4217 currency {currency!r}", field="currency") from None


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: `minor` units of `currency` (cents for USD, fils for KWD, yen for JPY)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise ValidationError("money amounts are integer minor units", field="amount")
        exponent(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Nothing, in `currency`."""
        return cls(0, currency)

    @classmethod
    def parse(cls, value: str, currency: str) -> Money:
        """Parse a decimal string ("10.50") exactly; more decimals than ISO allows is an error."""
        exp = exponent(currency)
        m = _DECIMAL.match(value) if isinstance(value, str) else None
        if m is None:
            raise ValidationError(f"{value!r} is not a decimal amount", field="amount")
        frac = m.group("frac") or ""
        if len(frac) > exp:
            raise ValidationError(f"{currency} has {exp} decimal places; got {value!r}",
                                  field="amount")
        return cls(int(m.group("int")) * 10**exp + int(frac.ljust(exp, "0") or "0"), currency)

    def to_decimal(self) -> str:
        """The ISO decimal string ("10.50", "1500", "1.250")."""
        exp = exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        whole, frac = divmod(abs(self.minor), 10**exp)
        return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValidationError(f"cannot combine {self.currency} with {other.currency}",
                                  field="currency")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __mul__(self, quantity: int) -> Money:
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise ValidationError("quantities are integers", field="quantity")
        return Money(self.minor * quantity, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __str__(self) -> str:
        return f"{self.to_decimal()} {self.currency}"
