"""Email handling at the edge: normalise, hash, and keep raw addresses out of everything else.

>>> key = b"k"
>>> normalize_email("  Ann@Example.COM ")
'ann@example.com'
>>> email_hash("ann@example.com", key) == email_hash(" ANN@example.com", key)
True
>>> redact_emails(b'{"email": "ann@example.com"}')
b'{"email": "[redacted-email]"}'
"""

from __future__ import annotations

import hashlib
import hmac
import re

REDACTED_EMAIL = "[redacted-email]"  # what an address becomes in dead letters and logs
_EMAIL_RE = re.compile(rb"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_EMAIL_TEXT_RE = re.compile(_EMAIL_RE.pattern.decode())


def normalize_email(email: str) -> str:
    """Trim and lowercase; raise ``ValueError`` when it is not an address."""
    value = email.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or " " in value:
        raise ValueError("email is not a valid address")
    return value


def email_hash(email: str, key: bytes) -> str:
    """Keyed HMAC-SHA256 of the normalised address: the internal identity key."""
    return hmac.new(key, normalize_email(email).encode(), hashlib.sha256).hexdigest()


def email_sha256(email: str) -> str:
    """Plain SHA-256 of the normalised address, as ad platforms' customer lists expect."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


def hash_email_field(event: dict[str, object], key: bytes) -> dict[str, object]:
    """Replace a raw ``email`` by its hashes, for producers that hash before sending.

    >>> hash_email_field({"email": "a@b.co"}, b"k").keys()
    dict_keys(['email_hash', 'email_sha256'])
    """
    raw = event.get("email")
    if not isinstance(raw, str):
        return event
    out = {k: v for k, v in event.items() if k != "email"}
    out.setdefault("email_hash", email_hash(raw, key))
    out.setdefault("email_sha256", email_sha256(raw))
    return out


def redact_email_text(text: str) -> str:
    """The same for text (error details, log lines)."""
    return _EMAIL_TEXT_RE.sub(REDACTED_EMAIL, text)


def redact_emails(raw: bytes) -> bytes:
    """Replace anything that looks like an email address (used before dead-lettering)."""
    return _EMAIL_RE.sub(REDACTED_EMAIL.encode(), raw)
