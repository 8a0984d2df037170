"""schemas/privacy.py: email normalisation, keyed hashing, redaction."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.schemas.privacy import (
    email_hash,
    email_sha256,
    hash_email_field,
    normalize_email,
    redact_emails,
)

KEY = b"k-123"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann@Example.COM ", "ann@example.com"),
        ("\tBOB.Smith+tag@Mail.Example.org\n", "bob.smith+tag@mail.example.org"),
    ],
)
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "ann", "ann@", "@example.com", "ann@localhost", "ann smith@example.com"]
)
def test_normalize_email_rejects_non_addresses(raw):
    with pytest.raises(ValueError, match="not a valid address"):
        normalize_email(raw)


def test_normalize_email_error_does_not_echo_the_input():
    with pytest.raises(ValueError) as info:
        normalize_email("secret person@example.com")
    assert "secret" not in str(info.value)


def test_email_hash_is_hmac_sha256_of_the_normalised_address():
    expected = hmac.new(KEY, b"ann@example.com", hashlib.sha256).hexdigest()
    assert email_hash("  ANN@example.com", KEY) == expected
    assert len(expected) == 64


def test_email_hash_depends_on_key():
    assert email_hash("ann@example.com", b"a") != email_hash("ann@example.com", b"b")


def test_email_sha256_is_plain_sha256_of_the_normalised_address():
    assert email_sha256(" Ann@Example.com") == hashlib.sha256(b"ann@example.com").hexdigest()


def test_hashes_reject_invalid_addresses():
    with pytest.raises(ValueError):
        email_hash("nope", KEY)
    with pytest.raises(ValueError):
        email_sha256("nope")


_local = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789._+-", min_size=1, max_size=12
)
_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789", min_size=1, max_size=8)


@settings(database=None, max_examples=60, deadline=None)
@given(
    local=_local,
    domain=_label,
    tld=_label,
    pad_l=st.sampled_from(["", " ", "  \t"]),
    pad_r=st.sampled_from(["", " ", "\n"]),
)
def test_hash_ignores_case_and_surrounding_whitespace(local, domain, tld, pad_l, pad_r):
    address = f"{local}@{domain}.{tld}"
    variant = pad_l + address.upper() + pad_r
    assert email_hash(variant, KEY) == email_hash(address.lower(), KEY)
    assert email_sha256(variant) == email_sha256(address)


def test_redact_emails_replaces_every_address():
    raw = b'{"email": "ann@example.com", "note": "cc Bob.S+x@mail.example.org please"}'
    out = redact_emails(raw)
    assert out == (b'{"email": "[redacted-email]", "note": "cc [redacted-email] please"}')
    assert b"@" not in out


def test_redact_emails_keeps_other_bytes():
    raw = b'{"handle": "@ann", "price": "5 @ 3", "bin": "\xff\xfe"}'
    assert redact_emails(raw) == raw


def test_redact_emails_works_on_invalid_utf8_and_returns_bytes():
    raw = b"\xff\xfeann@example.com\xff"
    out = redact_emails(raw)
    assert isinstance(out, bytes)
    assert out == b"\xff\xfe[redacted-email]\xff"


def test_redact_emails_catches_what_the_parser_would_hash():
    raw = b"Ann@Example.COM"
    assert redact_emails(raw) == b"[redacted-email]"


def test_hash_email_field_replaces_the_raw_address():
    event = {"event_id": "e1", "email": " Ann@Example.com", "user_id": "u1"}
    out = hash_email_field(event, KEY)
    assert out == {
        "event_id": "e1",
        "user_id": "u1",
        "email_hash": email_hash("ann@example.com", KEY),
        "email_sha256": hashlib.sha256(b"ann@example.com").hexdigest(),
    }
    assert event["email"] == " Ann@Example.com"  # input untouched


def test_hash_email_field_keeps_given_hashes():
    event = {"email": "ann@example.com", "email_hash": "ab" * 32}
    out = hash_email_field(event, KEY)
    assert out["email_hash"] == "ab" * 32
    assert "email" not in out


def test_hash_email_field_without_a_string_email_is_a_no_op():
    for event in ({"user_id": "u"}, {"email": None}):
        assert hash_email_field(event, KEY) is event


def test_hash_email_field_refuses_an_invalid_address():
    with pytest.raises(ValueError):
        hash_email_field({"email": "nope"}, KEY)
