"""ASGI layers: the request-body limit and the request metrics."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segstream.consumers.api.errors import error_response


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI re-raises HTTPExceptions met while reading a body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """413 for a body over ``max_bytes``: by Content-Length up front, else while it streams."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length < 0:
                    await error_response(400, "bad_request", "invalid Content-Length")(
                        scope, receive, send
                    )
                    return
                if length > self.max_bytes:
                    await self._reject(scope, receive, send)
                    return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except BodyTooLarge:
            if started:
                raise
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is larger than {self.max_bytes} bytes"
        await error_response(413, "body_too_large", detail, {"Connection": "close"})(
            scope, receive, send
        )


class Metrics:
    """Requests by route template, method and status; latency by route."""

    def __init__(
        self, app: ASGIApp, routes: list[BaseRoute], requests: Counter, latency: Histogram
    ) -> None:
        self.app = app
        self.routes = routes
        self.requests = requests
        self.latency = latency

    def _route(self, scope: Scope) -> str:
        """The template of the route that would answer (path and method), as the router picks."""
        partial: BaseRoute | None = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", "other"))
            if match == Match.PARTIAL and partial is None:
                partial = route
        return "unmatched" if partial is None else str(getattr(partial, "path", "other"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            # the router leaves the route it picked in the scope; only an answer given
            # before routing (a 413 from the body limit) needs the scan
            picked = scope.get("route")
            route = str(getattr(picked, "path", "other")) if picked else self._route(scope)
            self.latency.labels(route).observe(time.perf_counter() - t0)
            self.requests.labels(route, scope["method"], str(status)).inc()
