"""``segstream api``: the personalization lookup API (HTTP/JSON, FastAPI + uvicorn).

It only reads Redis (HGETALL, HMGET, GET, SCARD, SSCAN, PING, and its lookup script as
EVALSHA_RO/EVAL_RO, in which Redis refuses writes), so it can run as a read-only
Redis user limited to ``seg:*`` (``SEGSTREAM_API_REDIS_URL``; falls back to
``SEGSTREAM_REDIS_URL``).

==========================================  ==================  ==========================
route                                       scope               answer
==========================================  ==================  ==========================
``GET /v1/users/{id}/segment``              ``segments:read``   one user's segment (404
                                                                ``unknown_user``)
``POST /v1/segments/lookup``                ``segments:read``   up to 1,000 users at once
``GET /v1/segments``                        ``segments:read``   the segment catalog + sizes
``GET /v1/segments/{id}/members``           ``members:read``    profile keys, SSCAN pages
``GET /healthz`` ``/readyz`` ``/metrics``   none                liveness, Redis PING,
                                                                Prometheus
==========================================  ==================  ==========================

A lookup of one user or of a batch is one Redis call: the read-only Lua script
``consumers/lookup_segment.lua`` tries each user's candidate profile keys
(``consumers.queries.candidates``) in order and follows merge pointers inside Redis.
Segment names come from the catalog, cached in the process for a second (one more
HGETALL when it is stale).

Errors are JSON ``{"error": code, "detail": ...}``: 401 ``unauthorized``, 403
``forbidden``, 404 ``unknown_user`` / ``unknown_segment`` / ``not_found``, 413
``body_too_large``, 422 ``invalid_request``, 429 ``rate_limited`` (with
``Retry-After``), 500 ``redis_error`` (Redis refused a command), 503 ``redis_unavailable``;
the OpenAPI document (/openapi.json) declares each with the operations that can answer it,
and the member cursor's format (``schema.CURSOR_PATTERN``), checked against the app by
tests/consumers/test_api_openapi.py and test_api_pages.py.

Modules: ``app`` (routes), ``schema`` (request and answer shapes), ``reader`` (Redis
reads), ``runtime`` (shared state, auth), ``errors``, ``pages`` (member cursors),
``middleware`` (body limit, request metrics).
"""

from segstream.consumers.api.app import create_app
from segstream.consumers.api.runtime import Runtime

__all__ = ["Runtime", "create_app"]
