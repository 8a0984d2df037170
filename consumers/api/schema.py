"""Request and answer shapes: for validation and the OpenAPI document.

Answers are built as plain dicts (rendered by orjson); these models describe them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from segstream.consumers.redis_view import UserSegment

MAX_BATCH = 1000
MAX_PAGE = 1000
MAX_ID_CHARS = 1024

UserId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


# ------------------------------------------------------------- page cursors
# A member page cursor (``pages.encode_cursor``) is the SSCAN cursor, or, within one SSCAN
# batch larger than a page, "<SSCAN cursor>.<COUNT>.<after>": ``after`` is the last member
# returned, as unpadded base64url of its UTF-8, read back as bytes (a position in the
# members' order), so any base64url of the right length is one. The cursors
# ``pages.decode_cursor`` accepts are exactly the texts CURSOR_PATTERN matches, the pattern
# the OpenAPI document gives: the SSCAN cursor 0 to 2**64 - 1 (what Redis takes), COUNT 1
# to MAX_PAGE, ``after`` at most MAX_AFTER_BYTES bytes: a member is a profile key, at most
# MAX_ID_CHARS characters like every id the API takes (events hold ids of at most 256).
MAX_SCAN = 2**64 - 1
MAX_AFTER_BYTES = 4 * MAX_ID_CHARS  # UTF-8: at most 4 bytes a character
_B64 = "[A-Za-z0-9_-]"


def decimal_pattern(low: int, high: int) -> str:
    """A regex alternation matching the decimals ``low`` (0 or 1) to ``high``, no leading zeros."""
    if low not in (0, 1) or high < max(low, 1):
        raise ValueError(f"decimal_pattern({low}, {high}): low is 0 or 1, high at least 1")
    digits = str(high)
    n = len(digits)
    alts = ["0"] if low == 0 else []
    if n > 1:  # every number with fewer digits than high
        alts.append("[1-9]" + (f"[0-9]{{0,{n - 2}}}" if n > 2 else ""))
    for i in range(n):  # n digits: high's first i, then a smaller digit, then any
        rest = n - i - 1
        first = 1 if i == 0 else 0
        last = int(digits[i]) if digits[i + 1 :] == "9" * rest else int(digits[i]) - 1
        if last >= first:
            span = str(first) if last == first else f"[{first}-{last}]"
            tail = "" if rest == 0 else "[0-9]" if rest == 1 else f"[0-9]{{{rest}}}"
            alts.append(digits[:i] + span + tail)
        if last == int(digits[i]):  # the rest of high is all nines: done
            break
    return "|".join(alts)


def base64_pattern(max_bytes: int) -> str:
    """A regex matching unpadded base64url of 0 to ``max_bytes`` (3 or more) bytes: 4
    characters for each 3 bytes, a last 1 or 2 bytes in 2 or 3 (never 4k + 1 characters)."""
    if max_bytes < 3:
        raise ValueError(f"base64_pattern({max_bytes}): at least 3 bytes")
    whole = max_bytes // 3  # 4-character groups
    group, tail = f"{_B64}{{4}}", f"{_B64}{{2,3}}"
    if max_bytes % 3 == 2:  # a 1- or 2-byte tail fits after every group
        return f"(?:{group}){{0,{whole}}}(?:{tail})?"
    if max_bytes % 3 == 0:  # the last group, or a tail instead
        return f"(?:{group}){{0,{whole - 1}}}(?:{_B64}{{2,4}})?"
    # a 1-byte tail fits after the last group, a 2-byte one only instead of it
    return f"(?:{group}){{0,{whole - 1}}}(?:{group}(?:{_B64}{{2}})?|{tail})?"


def base64_chars(n_bytes: int) -> int:
    """The length of ``n_bytes`` bytes in unpadded base64."""
    return (4 * n_bytes + 2) // 3


CURSOR_PATTERN = (
    f"^(?:{decimal_pattern(0, MAX_SCAN)})"
    rf"(?:\.(?:{decimal_pattern(1, MAX_PAGE)})\.{base64_pattern(MAX_AFTER_BYTES)})?$"
)
# The longest text CURSOR_PATTERN matches.
MAX_CURSOR_CHARS = len(f"{MAX_SCAN}.{MAX_PAGE}.") + base64_chars(MAX_AFTER_BYTES)
CURSOR_DESCRIPTION = (
    "Where the walk goes on: `next_cursor` of the previous page, as it came (`0`, the "
    "default, starts it). A cursor is the SSCAN cursor (a decimal, 0 to 2^64 - 1), or, "
    "inside one SSCAN batch larger than a page, `<SSCAN cursor>.<COUNT>.<member>`: COUNT "
    f"1 to {MAX_PAGE}, and the last member returned as unpadded base64url of its UTF-8 (a "
    f"member has at most {MAX_ID_CHARS} characters: at most {MAX_AFTER_BYTES} bytes, "
    f"{base64_chars(MAX_AFTER_BYTES)} base64 characters). Decimals have no leading zeros; "
    f"at most {MAX_CURSOR_CHARS} characters in all. Any other text is answered 422."
)


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_BATCH)


def parse_lookup(body: bytes) -> LookupRequest:
    """The batch lookup's body, or the 422 FastAPI would give (locations under ``body``)."""
    try:
        return LookupRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=body) from None


def too_long(user_id: str) -> list[dict[str, Any]]:
    """The 422 detail of a user id over ``MAX_ID_CHARS``."""
    return [
        {
            "loc": ["path", "user_id"],
            "msg": f"String should have at most {MAX_ID_CHARS} characters",
            "type": "string_too_long",
        }
    ]


def bad_cursor(msg: str) -> list[dict[str, Any]]:
    """The 422 detail of a ``cursor`` that is not one (``pages.decode_cursor``)."""
    return [{"loc": ["query", "cursor"], "msg": msg, "type": "string_pattern_mismatch"}]


# What the lookup routes would declare as parameters, for the OpenAPI document.
BEARER: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
USER_ID_PARAMETER: dict[str, Any] = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "description": "A user id (tries u:<id>, then a:<id>) or a profile key u:, a:, e:.",
    "schema": {"type": "string", "maxLength": MAX_ID_CHARS, "title": "User Id"},
}
LOOKUP_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": LookupRequest.model_json_schema()}},
}


class UserSegmentOut(BaseModel):
    user_id: str
    profile: str = Field(description="The profile key holding the segment (u:, a: or e:).")
    segment: int
    segment_name: str | None
    scores: dict[str, float] = Field(description="Segment id → score.")
    model_version: int
    updated_at_ms: int = Field(description="Event time of the last update, ms since epoch.")


class LookupOut(BaseModel):
    results: dict[str, UserSegmentOut]
    unknown: list[str]


class HealthOut(BaseModel):
    """Sums over the members now, and ratios of them (null where undefined)."""

    users: int
    revenue: float = Field(description="Purchases and won deals, lifetime.")
    converted: int = Field(description="Members with a purchase, won deal or ad conversion.")
    ad_cost: float
    conversion_rate: float | None
    revenue_per_user: float | None
    cac: float | None = Field(description="Ad cost per converted member.")
    roas: float | None = Field(description="Revenue per unit of ad cost.")


class SegmentOut(BaseModel):
    id: int
    name: str | None
    size: int = Field(description="Members now (SCARD).")
    share: float | None = Field(description="Share of the population in the model's sample.")
    description: str | None
    centroid: dict[str, float] = Field(description="The segment's centre in plain units.")
    z: dict[str, float] = Field(description="The centre in z-scores against the population.")
    health: HealthOut


class MembersOut(BaseModel):
    members: list[str]
    next_cursor: (
        Annotated[str, StringConstraints(max_length=MAX_CURSOR_CHARS, pattern=CURSOR_PATTERN)]
        | None
    ) = Field(description="Pass as `cursor` for the next page; null: done.")


class ErrorOut(BaseModel):
    error: str
    detail: Any


def user_json(user: str, hit: UserSegment) -> dict[str, Any]:
    return {
        "user_id": user,
        "profile": hit.profile,
        "segment": hit.segment,
        "segment_name": hit.name,
        "scores": {str(k): v for k, v in hit.scores.items()},
        "model_version": hit.version,
        "updated_at_ms": hit.updated_ms,
    }
