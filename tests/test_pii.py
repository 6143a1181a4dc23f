import pytest

from aimds_ray.core.pii import card_kind, find_pii, iban_ok, luhn_ok, redact, ssn_ok


def ents(text: str) -> list[tuple[str, str]]:
    return [(m.entity, m.value) for m in find_pii(text)]


@pytest.mark.parametrize("num,ok", [("4111111111111111", True), ("4111111111111112", False),
                                    ("5555555555554444", True), ("378282246310005", True),
                                    ("1234567812345678", False)])
def test_luhn_and_issuer(num: str, ok: bool) -> None:
    assert (card_kind(num) is not None) == ok


def test_luhn_reference() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


@pytest.mark.parametrize("iban,ok", [("GB82 WEST 1234 5698 7654 32", True), ("GB82 WEST 1234 5698 7654 33", False),
                                     ("DE89370400440532013000", True), ("DE89370400440532013001", False),
                                     ("XX89370400440532013000", False)])
def test_iban_checksum(iban: str, ok: bool) -> None:
    assert iban_ok(iban) == ok


@pytest.mark.parametrize("ssn,ok", [("536-22-1234", True), ("000-12-3456", False), ("666-12-3456", False),
                                    ("912-12-3456", False), ("536-00-1234", False), ("536-22-0000", False)])
def test_ssn_rules(ssn: str, ok: bool) -> None:
    assert ssn_ok(ssn) == ok


def test_entities_found_in_text() -> None:
    text = ("Mail jane.doe@example.com or call +1 415-555-0134. Card 4111 1111 1111 1111, "
            "IBAN DE89370400440532013000, SSN 536-22-1234, host 10.0.0.12 and 2001:db8::8a2e:370:7334.")
    found = {e for e, _ in ents(text)}
    assert found == {"EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS"}


def test_invalid_checksums_are_not_pii() -> None:
    text = "Order 4111 1111 1111 1112, ref DE89370400440532013001, id 000-12-3456, version 1.2.3"
    assert ents(text) == []


def test_secrets() -> None:
    jwt = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
           "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")
    text = (f"aws AKIAIOSFODNN7EXAMPLE, gh ghp_{'a1B2' * 9}, token {jwt}\n"
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\n-----END RSA PRIVATE KEY-----")
    kinds = {m.kind for m in find_pii(text)}
    assert {"aws_access_key", "github_token", "jwt", "private_key"} <= kinds


def test_fake_jwt_without_alg_is_ignored() -> None:
    assert not [m for m in find_pii("eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxMjM0In0.abcdefghijk") if m.kind == "jwt"]


def test_redaction_modes() -> None:
    text = "a@x.io and b@y.io and a@x.io"
    ms = find_pii(text)
    assert redact(text, ms, "placeholder") == "<EMAIL_1> and <EMAIL_2> and <EMAIL_1>"
    assert redact(text, ms, "mask") == "****** and ****** and ******"
    hashed = redact(text, ms, "hash")
    assert hashed.startswith("<EMAIL:") and "a@x.io" not in hashed
