"""Errors as JSON ``{"error": code, "detail": ...}``, and the handlers that render them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from segstream.consumers.api.schema import ErrorOut

log = logging.getLogger(__name__)


class OrjsonResponse(JSONResponse):
    """JSON rendered by orjson (FastAPI's own ``ORJSONResponse`` is deprecated)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ApiError(Exception):
    """An answer other than 200, rendered as ``{"error": code, "detail": detail}``."""

    def __init__(
        self, status: int, error: str, detail: Any, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def error_response(
    status: int, error: str, detail: Any, headers: Mapping[str, str] | None = None
) -> OrjsonResponse:
    return OrjsonResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


ERRORS: dict[int | str, dict[str, Any]] = {  # for the OpenAPI document
    code: {"model": ErrorOut, "description": text}
    for code, text in (
        (401, "Missing or invalid API key"),
        (403, "The key lacks the scope"),
        (422, "Invalid request"),
        (429, "Over the key's rate (per API process); see Retry-After"),
        (500, "Redis refused a command (redis_error: see the API log)"),
        (503, "Redis unavailable"),
    )
}
TOO_LARGE: dict[str, Any] = {  # the body limit (SEGSTREAM_API_MAX_BODY_BYTES), for routes with one
    "model": ErrorOut,
    "description": "The request body is over the limit (SEGSTREAM_API_MAX_BODY_BYTES)",
}


def add_handlers(app: FastAPI) -> None:
    """Every failure answers in the same JSON shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> Response:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return error_response(422, "invalid_request", detail)

    @app.exception_handler(RedisError)
    async def _redis(_: Request, exc: RedisError) -> Response:
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            log.warning("redis unavailable: %s", exc)
            return error_response(503, "redis_unavailable", "Redis did not answer; try again")
        log.error("redis error: %r", exc)
        return error_response(500, "redis_error", "Redis refused the request; see the API log")
