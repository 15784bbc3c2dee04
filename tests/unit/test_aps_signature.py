"""APS SHA phrase signatures: vectors built by hand from the documented algorithm, verification
over every received parameter, phrase separation, secrecy, and agreement with the emulator."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywire.domain.errors import ConfigError, SignatureError
from paywire.emulator.aps import signing as emulator_signing
from paywire.providers.aps.signature import (
    CARD_FIELDS,
    ShaType,
    Signer,
    canonical_params,
    compute,
    delivery_key,
    matches,
    signature_string,
)

# APS's worked example (developer docs, "Signature Calculation"): these parameters, sorted and
# concatenated, give exactly this string.
DOC_PARAMS = {
    "command": "PURCHASE", "access_code": "SILgpo7pWbmzuURp2qri",
    "merchant_identifier": "MxvOupuG", "merchant_reference": "ORD-12345-2024",
    "amount": "2000", "currency": "AED", "language": "en",
    "customer_email": "customer@example.com",
}
DOC_STRING = ("access_code=SILgpo7pWbmzuURp2qriamount=2000command=PURCHASEcurrency=AED"
              "customer_email=customer@example.comlanguage=enmerchant_identifier=MxvOupuG"
              "merchant_reference=ORD-12345-2024")
DOC_PHRASE = "MySecretKey123"
REQUEST_PHRASE, RESPONSE_PHRASE = "req-Phrase-91", "resp-Phrase-27"


def sha256_hex(text: str) -> str:
    """SHA-256 of UTF-8 text, lowercase hex (the expectation, computed without the code)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_documented_example_string_and_sha256() -> None:
    """The documented example concatenates to the published string; SHA-256 wraps the phrase."""
    assert canonical_params(DOC_PARAMS) == DOC_STRING
    assert signature_string(DOC_PARAMS, DOC_PHRASE) == DOC_PHRASE + DOC_STRING + DOC_PHRASE
    assert compute(DOC_PARAMS, DOC_PHRASE, ShaType.SHA256) == sha256_hex(
        DOC_PHRASE + DOC_STRING + DOC_PHRASE)


def test_sha512_vector_built_by_hand() -> None:
    """SHA-512 over a hand-built string (names out of order on input)."""
    params = {"merchant_reference": "ord_1-2", "amount": "1250", "currency": "KWD",
              "access_code": "AC", "command": "REFUND"}
    text = ("PHaccess_code=ACamount=1250command=REFUNDcurrency=KWD"
            "merchant_reference=ord_1-2PH")
    assert compute(params, "PH", ShaType.SHA512) == hashlib.sha512(text.encode()).hexdigest()


def test_sha128_is_sha1_assumption() -> None:
    """"SHA-128" (listed by APS, no such algorithm) is taken as SHA-1 (a labelled assumption)."""
    text = "Pa=1P"
    expected = hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 - what APS's setting means
    assert compute({"a": "1"}, "P", ShaType.SHA128) == expected


@pytest.mark.parametrize(("sha", "digest"), [(ShaType.HMAC256, hashlib.sha256),
                                             (ShaType.HMAC512, hashlib.sha512)])
def test_hmac_variants_assumption(sha: ShaType, digest: object) -> None:
    """The unconfirmed HMAC types key HMAC with the phrase over the same wrapped string."""
    expected = hmac.new(b"K", b"Kb=2z=K", digest).hexdigest()  # type: ignore[arg-type]
    assert compute({"z": "", "b": "2"}, "K", sha) == expected


def test_signature_excluded_and_empty_values_included() -> None:
    """`signature` never enters the string; an empty value does, as `name=`."""
    params = {"b": "", "a": "x", "signature": "deadbeef"}
    assert canonical_params(params) == "a=xb="
    assert compute(params, "P", ShaType.SHA256) == sha256_hex("Pa=xb=P")


def test_sort_is_case_sensitive_code_point_order() -> None:
    """Names sort by code point: uppercase before `_` before lowercase (APS: case-sensitive)."""
    params = {"alpha": "1", "Zeta": "2", "_x": "3", "Alpha": "4"}
    assert canonical_params(params) == "Alpha=4Zeta=2_x=3alpha=1"


def test_utf8_values() -> None:
    """Non-ASCII values (an Arabic description) are hashed as UTF-8."""
    params = {"order_description": "طلب رقم ٥"}
    assert compute(params, "P", ShaType.SHA256) == sha256_hex("Porder_description=طلب رقم ٥P")


def test_nested_and_non_string_values_assumption() -> None:
    """Nested values concatenate as {k=v, k=v} in received order; JSON scalars as their text."""
    params = {"apple_header": {"b": "2", "a": "1"}, "n": 5, "t": True, "z": None, "l": ["x", 1]}
    assert canonical_params(params) == (
        "apple_header={b=2, a=1}l=[x, 1]n=5t=truez=null")


def test_request_signature_leaves_out_card_fields() -> None:
    """The merchant signs the form without the card fields the browser adds later."""
    signer = Signer("SHA-256", REQUEST_PHRASE, RESPONSE_PHRASE)
    base = {"service_command": "TOKENIZATION", "merchant_reference": "r-1"}
    with_card = {**base, **dict.fromkeys(CARD_FIELDS, "4005550000000001")}
    expected = sha256_hex(REQUEST_PHRASE + "merchant_reference=r-1service_command=TOKENIZATION"
                          + REQUEST_PHRASE)
    assert signer.request_signature(base) == signer.request_signature(with_card) == expected


def test_request_and_response_phrases_are_separate() -> None:
    """Requests use the request phrase; verification uses the response phrase only."""
    signer = Signer(ShaType.SHA256, REQUEST_PHRASE, RESPONSE_PHRASE)
    params = {"amount": "100", "command": "PURCHASE"}
    signed = signer.sign_request(params)
    assert signed["signature"] == sha256_hex(f"{REQUEST_PHRASE}amount=100command=PURCHASE"
                                             f"{REQUEST_PHRASE}")
    assert not signer.response_matches(signed)  # a request-phrase signature is not APS's
    answer = {**params, "signature": sha256_hex(
        f"{RESPONSE_PHRASE}amount=100command=PURCHASE{RESPONSE_PHRASE}")}
    signer.verify_response(answer)


def _answer(**params: str) -> dict[str, str]:
    body = "".join(f"{k}={params[k]}" for k in sorted(params))
    return {**params, "signature": sha256_hex(RESPONSE_PHRASE + body + RESPONSE_PHRASE)}


def test_verification_covers_every_received_parameter() -> None:
    """An added unknown field, an empty one, a removed one or a changed value all fail."""
    signer = Signer("SHA-256", REQUEST_PHRASE, RESPONSE_PHRASE)
    good = _answer(response_code="14000", amount="1000", fort_id="1", extra_field="")
    signer.verify_response(good)  # the unknown, empty field is part of what was signed
    for broken in ({**good, "injected": "1"}, {**good, "injected": ""},
                   {k: v for k, v in good.items() if k != "extra_field"},
                   {**good, "amount": "1001"}, {**good, "response_code": "13666"}):
        with pytest.raises(SignatureError) as err:
            signer.verify_response(broken)
        assert err.value.check == "signature"


def test_hex_case_and_missing_signature() -> None:
    """Uppercase hex verifies; a missing or empty signature is refused as such."""
    signer = Signer("SHA-256", REQUEST_PHRASE, RESPONSE_PHRASE)
    good = _answer(a="1")
    signer.verify_response({**good, "signature": good["signature"].upper()})
    for bad in ({"a": "1"}, {"a": "1", "signature": ""}, {"a": "1", "signature": "   "}):
        with pytest.raises(SignatureError, match="no signature"):
            signer.verify_response(bad)
    assert not matches({"a": "1", "signature": "zz\u0663"}, RESPONSE_PHRASE, ShaType.SHA256)


def test_uncanonicalizable_parameters_refused() -> None:
    """A value that cannot be canonicalized is a refusal (check "params"), not a crash."""
    signer = Signer("SHA-256", REQUEST_PHRASE, RESPONSE_PHRASE)
    with pytest.raises(SignatureError) as err:
        signer.verify_response({"a": object(), "signature": "00"})
    assert err.value.check == "params"


def test_phrases_never_shown() -> None:
    """Neither phrase appears in the signer's repr or in a verification error."""
    signer = Signer("SHA-512", REQUEST_PHRASE, RESPONSE_PHRASE)
    with pytest.raises(SignatureError) as err:
        signer.verify_response({"a": "1", "signature": "00"})
    shown = " ".join([repr(signer), str(err.value), repr(err.value.details),
                      str(err.value.likely_cause)])
    assert REQUEST_PHRASE not in shown and RESPONSE_PHRASE not in shown
    assert "SHA-512" in repr(signer)


def test_configuration_refused() -> None:
    """Empty phrases and unknown SHA types are configuration errors."""
    with pytest.raises(ConfigError):
        Signer("SHA-256", "", "x")
    with pytest.raises(ConfigError):
        Signer("SHA-256", "x", "")
    with pytest.raises(ConfigError):
        ShaType.parse("MD5")
    with pytest.raises(ConfigError):
        compute({"a": "1"}, "", ShaType.SHA256)


@pytest.mark.parametrize(("text", "expected"), [
    ("SHA-256", ShaType.SHA256), ("sha256", ShaType.SHA256), ("SHA_512", ShaType.SHA512),
    ("sha-128", ShaType.SHA128), ("HMAC-256", ShaType.HMAC256),
    ("hmac_sha512", ShaType.HMAC512)])
def test_sha_type_spellings(text: str, expected: ShaType) -> None:
    """The dashboard's spellings and common variants parse."""
    assert ShaType.parse(text) is expected


def test_delivery_key_is_the_canonical_parameters() -> None:
    """Same parameters in any order -> same key; any change -> another; no phrase inside."""
    a = {"fort_id": "1", "amount": "5", "signature": "s1"}
    b = {"amount": "5", "signature": "s1", "fort_id": "1"}
    assert delivery_key(a) == delivery_key(b) == sha256_hex("amount=5fort_id=1")
    assert delivery_key({**a, "amount": "6"}) != delivery_key(a)


def test_self_test_passes() -> None:
    """The doctor's self-test signs and verifies with the configured phrases."""
    assert Signer("SHA-256", REQUEST_PHRASE, RESPONSE_PHRASE).self_test()


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCZ_0123456789", min_size=1, max_size=12)
values = st.text(max_size=20)
param_sets = st.dictionaries(names.filter(lambda n: n != "signature"), values, min_size=1,
                             max_size=8)


@given(param_sets, st.sampled_from(["SHA-256", "SHA-512", "SHA-128"]))
def test_emulator_and_provider_agree(params: dict[str, str], sha: str) -> None:
    """The emulator's independent implementation and the provider's sign alike."""
    assert emulator_signing.sign(params, "p", sha) == compute(params, "p", ShaType.parse(sha))


@given(param_sets, st.data())
def test_any_value_change_breaks_the_signature(params: dict[str, str], data: st.DataObject
                                               ) -> None:
    """Signed parameters verify; changing any one value stops them verifying."""
    signed = dict(params, signature=compute(params, RESPONSE_PHRASE, ShaType.SHA256))
    assert matches(signed, RESPONSE_PHRASE, ShaType.SHA256)
    name = data.draw(st.sampled_from(sorted(params)))
    changed = dict(signed, **{name: params[name] + "x"})
    assert not matches(changed, RESPONSE_PHRASE, ShaType.SHA256)
