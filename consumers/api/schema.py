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
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: done.")


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
