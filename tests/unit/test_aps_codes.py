"""APS response codes -> outcomes (exhaustive over the published tables), amounts in minor
units, references, and parsed results (CHECK_STATUS truth, duplicate resolution, fact keys)."""

from __future__ import annotations

import itertools

import pytest

from paywire.domain.errors import ValidationError
from paywire.domain.money import Money
from paywire.domain.order import OrderStatus
from paywire.providers.aps.amounts import (
    check_reference,
    from_aps_amount,
    maintenance_reference,
    merchant_reference,
    parse_merchant_reference,
    to_aps_amount,
)
from paywire.providers.aps.codes import MESSAGES, STATUSES, ResponseCode
from paywire.providers.aps.mapping import (
    BUYER_MESSAGES,
    COMMAND_STATUSES,
    DUPLICATE_MESSAGES,
    ERROR_KINDS,
    TRANSACTION_COMMANDS,
    UNCERTAIN_MESSAGES,
    Outcome,
    classify,
    classify_transaction,
)
from paywire.providers.aps.results import ApsResult, parse_result, parse_status, resolved

Out, S = Outcome, OrderStatus
COMMANDS = sorted(COMMAND_STATUSES)
ALL_CODES = [s + m for s, m in itertools.product(STATUSES, MESSAGES)]

# Hand-written expectations for the codes paywire meets most: (command, code, outcome, kind).
TABLE = [
    ("PURCHASE", "14000", Out.SUCCESS, None),
    ("PURCHASE", "13666", Out.DECLINED, "declined"),
    ("PURCHASE", "13029", Out.DECLINED, "declined"),
    ("PURCHASE", "13030", Out.DECLINED, "declined"),
    ("PURCHASE", "15777", Out.UNCERTAIN, None),
    ("PURCHASE", "15000", Out.UNCERTAIN, None),
    ("PURCHASE", "19000", Out.PENDING, None),
    ("PURCHASE", "10000", Out.PENDING, None),
    ("PURCHASE", "20064", Out.ON_HOLD, None),
    ("PURCHASE", "00066", Out.DUPLICATE_REFERENCE, None),
    ("PURCHASE", "13066", Out.DUPLICATE_REFERENCE, None),
    ("PURCHASE", "00007", Out.DUPLICATE_REFERENCE, None),
    ("PURCHASE", "00008", Out.ERROR, "auth"),
    ("PURCHASE", "00010", Out.ERROR, "auth"),
    ("PURCHASE", "00016", Out.DECLINED, "declined"),
    ("PURCHASE", "00072", Out.DECLINED, "declined"),
    ("PURCHASE", "00005", Out.ERROR, "invalid"),
    ("PURCHASE", "00013", Out.ERROR, "invalid"),
    ("PURCHASE", "00006", Out.ERROR, "transient"),
    ("PURCHASE", "00777", Out.UNCERTAIN, None),
    ("PURCHASE", "13784", Out.UNCERTAIN, None),
    ("PURCHASE", "14001", Out.UNKNOWN, "unknown"),
    ("PURCHASE", "13000", Out.UNKNOWN, "unknown"),
    ("PURCHASE", "04000", Out.UNKNOWN, "unknown"),
    ("PURCHASE", "02000", Out.UNKNOWN, "unknown"),
    ("PURCHASE", "44000", Out.UNKNOWN, "unknown"),
    ("AUTHORIZATION", "02000", Out.SUCCESS, None),
    ("AUTHORIZATION", "03666", Out.DECLINED, "declined"),
    ("AUTHORIZATION", "20064", Out.ON_HOLD, None),
    ("AUTHORIZATION", "14000", Out.UNKNOWN, "unknown"),
    ("CAPTURE", "04000", Out.SUCCESS, None),
    ("CAPTURE", "05042", Out.DECLINED, "invalid"),
    ("CAPTURE", "05034", Out.DECLINED, "declined"),
    ("CAPTURE", "05036", Out.DECLINED, "not_found"),
    ("CAPTURE", "00036", Out.ERROR, "not_found"),
    ("CAPTURE", "05662", Out.ERROR, "invalid"),
    ("CAPTURE", "05008", Out.ERROR, "auth"),
    ("CAPTURE", "15000", Out.UNCERTAIN, None),
    ("CAPTURE", "19000", Out.PENDING, None),
    ("CAPTURE", "20064", Out.UNKNOWN, "unknown"),
    ("CAPTURE", "00066", Out.DUPLICATE_REFERENCE, None),
    ("REFUND", "06000", Out.SUCCESS, None),
    ("REFUND", "07048", Out.DECLINED, "over_refund"),
    ("REFUND", "00048", Out.ERROR, "over_refund"),
    ("REFUND", "07047", Out.DECLINED, "already_done"),
    ("REFUND", "00066", Out.DUPLICATE_REFERENCE, None),
    ("REFUND", "14000", Out.UNKNOWN, "unknown"),
    ("VOID_AUTHORIZATION", "08000", Out.SUCCESS, None),
    ("VOID_AUTHORIZATION", "09034", Out.DECLINED, "declined"),
    ("VOID_AUTHORIZATION", "00016", Out.ERROR, "invalid"),
    ("CHECK_STATUS", "12000", Out.SUCCESS, None),
    ("CHECK_STATUS", "11036", Out.ERROR, "not_found"),
    ("CHECK_STATUS", "11006", Out.ERROR, "transient"),
    ("CHECK_STATUS", "00006", Out.ERROR, "transient"),
    ("CHECK_STATUS", "00066", Out.ERROR, "invalid"),
    ("CHECK_STATUS", "15777", Out.UNKNOWN, "unknown"),
    ("CHECK_STATUS", "12036", Out.UNKNOWN, "unknown"),
    ("TOKENIZATION", "18000", Out.SUCCESS, None),
    ("TOKENIZATION", "17016", Out.DECLINED, "declined"),
    ("TOKENIZATION", "00008", Out.ERROR, "auth"),
]


@pytest.mark.parametrize(("command", "code", "outcome", "kind"), TABLE)
def test_table(command: str, code: str, outcome: Outcome, kind: str | None) -> None:
    """Each listed code means what the table says for its command."""
    c = classify(command, code)
    assert (c.outcome, c.kind) == (outcome, kind), c.reason
    assert c.response_code == code and c.command == command


def test_every_published_code_for_every_command() -> None:
    """Exhaustive over the published tables: the rules hold for every (command, code)."""
    for command, code in itertools.product(COMMANDS, ALL_CODES):
        c = classify(command, code)
        status, message = code[:2], code[2:]
        success, failure = COMMAND_STATUSES[command]
        assert (c.outcome is Out.SUCCESS) == (status == success and message == "000"), code
        if c.outcome is Out.DUPLICATE_REFERENCE:
            assert message in DUPLICATE_MESSAGES and status in ("00", failure)
            assert command in TRANSACTION_COMMANDS
        if status == "15" and command in TRANSACTION_COMMANDS:
            assert c.outcome is Out.UNCERTAIN, code  # never a decline
        if c.outcome is Out.DECLINED:
            assert status in ("00", failure) and message != "000"
            if command in TRANSACTION_COMMANDS:
                assert message not in DUPLICATE_MESSAGES | UNCERTAIN_MESSAGES
        if status not in ("00", success, failure, "15", "19", "20", "10", "01", "40"):
            assert c.outcome is Out.UNKNOWN, code  # another command's status
        if c.outcome is Out.UNKNOWN:
            assert c.needs_attention and c.kind == "unknown"
        assert c.retryable == (c.outcome is Out.ERROR and c.kind == "transient"
                               and command == "CHECK_STATUS"), code


@pytest.mark.parametrize("code", ["99000", "14999", "16000", "1400", "140000", "abcde", "",
                                  None, 3.5, True])
def test_unpublished_or_malformed_codes_are_unknown(code: object) -> None:
    """Codes outside the tables or not five digits are never guessed."""
    for command in COMMANDS:
        assert classify(command, code).outcome is Out.UNKNOWN


def test_unknown_command_is_unknown() -> None:
    """A command paywire never sends has no rule."""
    assert classify("GET_TOKENS", "54000").outcome is Out.UNKNOWN


def test_integer_codes_parse() -> None:
    """A JSON integer code (leading zeros lost) is read as five digits."""
    assert ResponseCode.parse(8000) == ResponseCode("08", "000")
    assert classify("VOID_AUTHORIZATION", 8000).outcome is Out.SUCCESS


def test_categories_are_published_and_disjoint() -> None:
    """Every categorized message is published; no message is in two categories."""
    groups = [DUPLICATE_MESSAGES, UNCERTAIN_MESSAGES, frozenset(ERROR_KINDS), BUYER_MESSAGES]
    for group in groups:
        assert group <= set(MESSAGES)
    for a, b in itertools.combinations(groups, 2):
        assert not a & b


@pytest.mark.parametrize(("code", "command", "outcome"), [
    ("14000", "PURCHASE", Out.SUCCESS), ("02000", "AUTHORIZATION", Out.SUCCESS),
    ("04000", "CAPTURE", Out.SUCCESS), ("06000", "REFUND", Out.SUCCESS),
    ("08000", "VOID_AUTHORIZATION", Out.SUCCESS), ("13666", "PURCHASE", Out.DECLINED),
    ("15777", "PURCHASE", Out.UNCERTAIN), ("20064", "PURCHASE", Out.ON_HOLD),
    ("19000", "PURCHASE", Out.PENDING)])
def test_transaction_codes(code: str, command: str, outcome: Outcome) -> None:
    """A CHECK_STATUS transaction_code is read as its status's command's answer."""
    c = classify_transaction(code)
    assert (c.command, c.outcome) == (command, outcome)


@pytest.mark.parametrize("code", ["12000", "18000", "x", None, "44000"])
def test_transaction_codes_of_no_transaction(code: object) -> None:
    """Codes that no transaction of ours can have are unknown."""
    assert classify_transaction(code).outcome is Out.UNKNOWN


def test_classification_as_error() -> None:
    """A refusal converts to a typed ProviderError naming the code."""
    err = classify("REFUND", "07048").error()
    assert (err.provider, err.kind, err.name, err.issue) == ("aps", "over_refund", "07048",
                                                              "declined")
    assert "07048" in err.message


# --- amounts and references ----------------------------------------------------------------


@pytest.mark.parametrize(("money", "wire"), [
    (Money(10000, "AED"), "10000"), (Money(1250, "KWD"), "1250"), (Money(1, "BHD"), "1"),
    (Money(100000, "JOD"), "100000"), (Money(9_999_999_999, "OMR"), "9999999999")])
def test_amounts_in_minor_units(money: Money, wire: str) -> None:
    """Amounts go out as ISO minor-unit digits (three decimals for KWD/BHD/OMR/JOD)."""
    assert to_aps_amount(money) == wire
    assert from_aps_amount(wire, money.currency) == money


@pytest.mark.parametrize("money", [Money(0, "AED"), Money(-5, "AED"), Money(10**10, "AED"),
                                   Money(100, "JPY"), Money(100, "CLF")])
def test_amounts_refused(money: Money) -> None:
    """Zero, negative, over ten digits, or a currency APS is not configured for."""
    with pytest.raises(ValidationError):
        to_aps_amount(money)


def test_currency_set_is_configurable() -> None:
    """A merchant account with other currencies passes its own set."""
    assert to_aps_amount(Money(100, "JPY"), frozenset({"JPY"})) == "100"


@pytest.mark.parametrize(("value", "currency"), [("12.50", "AED"), ("-1", "AED"), ("", "AED"),
                                                 ("12345678901", "AED"), ("10", None),
                                                 ("10", "XXX"), (True, "AED")])
def test_malformed_wire_amounts(value: object, currency: object) -> None:
    """Anything but minor-unit digits in a known currency is refused."""
    with pytest.raises(ValidationError):
        from_aps_amount(value, currency)


def test_merchant_reference_is_order_and_attempt() -> None:
    """`<order id>-<attempt>`, round-tripped; invalid ids, attempts and lengths refused."""
    ref = merchant_reference("ord_0123456789abcdef01234567", 2)
    assert ref == "ord_0123456789abcdef01234567-2"
    assert parse_merchant_reference(ref) == ("ord_0123456789abcdef01234567", 2)
    assert parse_merchant_reference("no-attempt-x") is None
    assert parse_merchant_reference("ord-01") is None
    for order_id, attempt in (("o" * 39, 1), ("ord:1", 1), ("ord 1", 1), ("ord", 0)):
        with pytest.raises(ValidationError):
            merchant_reference(order_id, attempt)


def test_maintenance_reference_stable_and_valid() -> None:
    """A usable operation key is kept; another becomes a stable 40-character hash reference."""
    assert maintenance_reference("ref_abc") == "ref_abc"
    long_key = "ord_0123456789abcdef01234567:capture_authorization:1"
    derived = maintenance_reference(long_key)
    assert derived == maintenance_reference(long_key) and len(derived) == 40
    assert check_reference(derived) == derived
    assert maintenance_reference(long_key + "x") != derived


# --- parsed results ----------------------------------------------------------------------


def _status(**fields: str) -> dict[str, str]:
    base = {"query_command": "CHECK_STATUS", "response_code": "12000",
            "merchant_reference": "o-1", "fort_id": "1"}
    return {**base, **fields}


@pytest.mark.parametrize(("fields", "expected"), [
    ({"transaction_status": "14", "transaction_code": "14000", "captured_amount": "1000",
      "authorized_amount": "1000", "refunded_amount": "0"}, S.COMPLETED),
    ({"transaction_status": "06", "transaction_code": "06000", "captured_amount": "1000",
      "refunded_amount": "400"}, S.PARTIALLY_REFUNDED),
    ({"transaction_status": "06", "transaction_code": "06000", "captured_amount": "1000",
      "refunded_amount": "1000"}, S.REFUNDED),
    ({"transaction_status": "02", "transaction_code": "02000", "authorized_amount": "1000",
      "captured_amount": "0"}, S.AUTHORIZED),
    ({"transaction_status": "04", "transaction_code": "04000", "authorized_amount": "1000",
      "captured_amount": "600"}, S.COMPLETED),
    ({"transaction_status": "08", "transaction_code": "08000"}, S.VOIDED),
    ({"transaction_status": "13", "transaction_code": "13666"}, S.DENIED),
    ({"transaction_status": "19", "transaction_code": "19000"}, S.PENDING),
    ({"transaction_status": "15", "transaction_code": "15777"}, None),
    ({"transaction_status": "20", "transaction_code": "20064"}, None),
    ({"transaction_status": "14", "transaction_code": "13666"}, None),
    ({"transaction_status": "14", "transaction_code": "14000", "captured_amount": "1.5"}, None),
    ({"response_code": "11036"}, None),
])
def test_check_status_truth(fields: dict[str, str], expected: OrderStatus | None) -> None:
    """CHECK_STATUS's transaction code and totals decide the order status (or nothing)."""
    assert parse_status(_status(**fields), "AED").order_status() == expected


def test_check_status_not_found() -> None:
    """11036: APS does not know the reference."""
    truth = parse_status(_status(response_code="11036"), "AED")
    assert not truth.found and truth.query.kind == "not_found" and truth.transaction is None


def test_answer_for_another_amount_reference_or_command_is_unknown() -> None:
    """A success for an amount, reference or command paywire did not send needs attention."""
    params = {"command": "PURCHASE", "response_code": "14000", "amount": "1000",
              "currency": "AED", "merchant_reference": "o-1", "fort_id": "9"}
    ok = parse_result(params, command="PURCHASE", expected_amount=Money(1000, "AED"),
                      expected_reference="o-1")
    assert ok.outcome is Out.SUCCESS and ok.target_status() is S.COMPLETED
    for kw in ({"expected_amount": Money(999, "AED")}, {"expected_reference": "o-2"},
               {"command": "AUTHORIZATION"}):
        kw.setdefault("command", "PURCHASE")  # type: ignore[arg-type]
        assert parse_result(params, **kw).outcome is Out.UNKNOWN  # type: ignore[arg-type]
    assert parse_result({**params, "amount": "10.00"}).outcome is Out.UNKNOWN


def test_two_equal_partial_refunds_are_two_facts() -> None:
    """Fact keys include our per-operation reference, so equal refunds stay distinct."""
    base = {"command": "REFUND", "response_code": "06000", "amount": "500", "currency": "AED",
            "merchant_reference": "o-1", "fort_id": "9"}
    a = parse_result({**base, "maintenance_reference": "ref_a"})
    b = parse_result({**base, "maintenance_reference": "ref_b"})
    assert a.fact_key() == "9:REFUND:500:ref_a" and a.fact_key() != b.fact_key()
    assert a.target_status() is None  # the refunded total decides


def _duplicate(command: str) -> ApsResult:
    return parse_result({"command": command, "response_code": "00066",
                         "merchant_reference": "o-1"}, command=command)


@pytest.mark.parametrize(("command", "fields", "outcome", "target"), [
    ("PURCHASE", {"transaction_status": "14", "transaction_code": "14000",
                  "captured_amount": "100"}, Out.SUCCESS, S.COMPLETED),
    ("PURCHASE", {"transaction_status": "13", "transaction_code": "13666"}, Out.DECLINED,
     S.DENIED),
    ("PURCHASE", {"transaction_status": "20", "transaction_code": "20064"}, Out.ON_HOLD, None),
    ("AUTHORIZATION", {"transaction_status": "15", "transaction_code": "15777"}, Out.UNCERTAIN,
     None),
    ("PURCHASE", {"transaction_status": "06", "transaction_code": "06000",
                  "captured_amount": "100", "refunded_amount": "10"}, Out.SUCCESS,
     S.PARTIALLY_REFUNDED),
    ("AUTHORIZATION", {"transaction_status": "14", "transaction_code": "14000"}, Out.UNKNOWN,
     None),
    ("REFUND", {"transaction_status": "06", "transaction_code": "06000",
                "captured_amount": "100", "refunded_amount": "100"}, Out.SUCCESS, S.REFUNDED),
    ("CAPTURE", {"transaction_status": "06", "transaction_code": "06000",
                 "captured_amount": "100", "refunded_amount": "5"}, Out.UNCERTAIN,
     S.PARTIALLY_REFUNDED),
    ("REFUND", {"response_code": "11036"}, Out.UNKNOWN, None),
])
def test_duplicate_reference_resolved_by_truth(command: str, fields: dict[str, str],
                                               outcome: Outcome,
                                               target: OrderStatus | None) -> None:
    """A duplicate reference takes CHECK_STATUS's truth: never a decline of its own."""
    result = resolved(_duplicate(command), parse_status(_status(**fields), "AED"))
    assert result.outcome is outcome, result.classification.reason
    assert result.target_status() == target
    assert result.truth is not None
