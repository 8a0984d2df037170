"""Signed webhook delivery (Standard Webhooks), with retries, backoff and a final verdict.

Each request carries ``webhook-id`` (the trigger's deterministic id: receivers
dedupe on it), ``webhook-timestamp`` (unix seconds) and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 over ``{id}.{timestamp}.{body}`` with the secret,
given as ``whsec_<base64>``).

>>> secret = "whsec_" + base64.b64encode(b"k").decode()
>>> headers = sign(secret, "msg_1", 1_700_000_000, b'{"a":1}')
>>> verify(secret, headers, b'{"a":1}', now_s=1_700_000_010)
True
>>> verify(secret, headers, b'{"a":2}', now_s=1_700_000_010)
False
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

TOLERANCE_S = 300  # receivers refuse timestamps further off than this


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return (
        "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()
    )


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now_s: float) -> bool:
    """What a receiver does: check the timestamp window and any of the given signatures."""
    try:
        msg_id, ts = headers["webhook-id"], int(headers["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs(now_s - ts) > TOLERANCE_S:
        return False
    expected = signature(secret, msg_id, ts, body)
    return any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    attempts: int
    reason: str  # "ok", "http_<status>", "timeout", "connect_error", ...


def retryable(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    *,
    max_attempts: int,
    backoff_s: float,
    backoff_max_s: float,
    timeout_s: float,
    rng: random.Random | None = None,
) -> Outcome:
    """POST until a 2xx, a non-retryable answer, or the last attempt (full-jitter backoff)."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    reason = "not_attempted"
    for attempt in range(1, max_attempts + 1):
        headers = sign(secret, msg_id, int(time.time()), body)  # fresh timestamp per attempt
        try:
            response = await client.post(url, content=body, headers=headers, timeout=timeout_s)
        except httpx.TimeoutException:
            reason = "timeout"
        except httpx.TransportError as exc:
            reason = type(exc).__name__.lower()
        else:
            if 200 <= response.status_code < 300:
                return Outcome(True, attempt, "ok")
            reason = f"http_{response.status_code}"
            if not retryable(response.status_code):
                return Outcome(False, attempt, reason)
        if attempt < max_attempts:
            cap = min(backoff_max_s, backoff_s * 2 ** (attempt - 1))
            await asyncio.sleep(rng.uniform(0, cap))
    return Outcome(False, max_attempts, reason)
