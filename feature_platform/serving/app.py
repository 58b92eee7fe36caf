"""The HTTP app of `feature-platform serve`: Feast's feature server, trimmed to what serving needs.

Feast's `/get-online-features` keeps Feast's request and response formats (and Feast's app its registry
refresh), behind the platform's authorization; its JSON is built straight from the platform's read
(`PlatformFeatureStore.online_response_dict`, equal to Feast's by test). `/push` and
`/health` are replaced: the push answers
with what the platform did (accepted, rejected, duplicates) and `/health` checks the online store
too, not only the registry. Feast's `/materialize*` and `/write-to-online-store` are not mounted:
materialization is a Dagster run, and raw online writes would bypass validation and newest-wins.
"""

from __future__ import annotations

import pandas as pd
from fastapi import FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from feast.data_source import PushMode
from feast.feature_server import GetOnlineFeaturesRequest, PushFeaturesRequest, get_app

from feature_platform.errors import (
    FeaturePlatformError,
    StoreUnavailableError,
    UnknownFeatureError,
    UnknownFeatureViewError,
)
from feature_platform.ingest import IngestResult
from feature_platform.serving.access import AccessDeniedError, AuthenticationError, Authorizer, Tokens
from feature_platform.serving.feature_store import PlatformFeatureStore

SERVED = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # kept from Feast's app as they are
PUSH_MODES = {"online": PushMode.ONLINE, "offline": PushMode.OFFLINE, "online_and_offline": PushMode.ONLINE_AND_OFFLINE}
REGISTRY_TTL_SEC = 60  # how often the server re-reads the registry (a new view appears within a minute)


class BadRequestError(FeaturePlatformError, ValueError):
    """A request the server cannot act on (malformed body, unknown push mode)."""


class RequestTooLargeError(FeaturePlatformError):
    """A request over the server's limits: its body's size or its number of entity rows (HTTP 413)."""


HTTP_STATUS = [
    (UnknownFeatureViewError, status.HTTP_404_NOT_FOUND),
    (UnknownFeatureError, status.HTTP_404_NOT_FOUND),
    (ValueError, status.HTTP_400_BAD_REQUEST),  # the platform's input errors (dates, entities, batches, request fields)
    (StoreUnavailableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (RequestTooLargeError, status.HTTP_413_CONTENT_TOO_LARGE),
    (AuthenticationError, status.HTTP_401_UNAUTHORIZED),
    (AccessDeniedError, status.HTTP_403_FORBIDDEN),
]


def build_app(platform, tokens: Tokens | None = None) -> FastAPI:
    """The app; `tokens` default to the settings' tokens file (none configured: no authentication)."""
    if tokens is None and platform.settings.serving_tokens_file:
        tokens = Tokens.load(platform.settings.serving_tokens_file)
    access = Authorizer(platform.settings, tokens)
    store = PlatformFeatureStore(platform)
    app = get_app(store, registry_ttl_sec=REGISTRY_TTL_SEC)
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) in SERVED]
    app.add_middleware(BodyLimit, max_bytes=platform.settings.serving_max_body_bytes)
    max_entities = platform.settings.serving_max_entities

    @app.post("/get-online-features")
    async def get_online_features(request: GetOnlineFeaturesRequest, http: Request) -> JSONResponse:
        caller = access.authenticate(http.headers.get("authorization"), http.url.path)
        features = request.feature_service or request.features
        rows = max((len(column) for column in request.entities.values()), default=0)
        if rows > max_entities:  # before any work: the read would hold every row and value in memory at once
            raise RequestTooLargeError(f"{rows} entity rows are over the server's limit of {max_entities} per "
                                       "request (FEATURE_PLATFORM_SERVING_MAX_ENTITIES): split the request")
        await run_in_threadpool(access.read, caller, features, http.url.path)
        # Feast's request and response formats; the JSON is built from the platform's read directly (the
        # same document Feast's endpoint makes from its protobuf response, with a third to two-fifths less CPU).
        body = await run_in_threadpool(store.online_response_dict, features, request.entities,
                                       request.full_feature_names)
        return JSONResponse(content=body)

    @app.post("/push")
    async def push(request: PushFeaturesRequest, http: Request) -> JSONResponse:
        caller = access.authenticate(http.headers.get("authorization"), http.url.path)
        view = await run_in_threadpool(platform._push_view, request.push_source_name)
        await run_in_threadpool(access.push, caller, view.name, http.url.path)
        if request.to not in PUSH_MODES:
            raise BadRequestError(f"push mode {request.to!r} is not one of {sorted(PUSH_MODES)}")
        try:
            frame = pd.DataFrame(request.df)
        except ValueError as exc:
            raise BadRequestError(f"push body 'df' is not a table of equal-length columns: {exc}") from None
        result = await run_in_threadpool(store.push, request.push_source_name, frame, to=PUSH_MODES[request.to])
        if isinstance(result, IngestResult):
            return JSONResponse({"batch_id": result.batch_id, "received": result.received, "accepted": result.accepted,
                                 "rejected": result.rejected, "duplicates": result.duplicates})
        return JSONResponse({"batch_id": result, "received": len(frame)}, status_code=status.HTTP_202_ACCEPTED)

    @app.get("/health")
    async def health() -> JSONResponse:
        checks = await run_in_threadpool(_health, platform, store)
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "unavailable", "profile": platform.settings.profile,
                             **checks}, status_code=status.HTTP_200_OK if healthy else status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(FeaturePlatformError)
    async def platform_error(_request: Request, exc: FeaturePlatformError) -> JSONResponse:
        code = next((c for kinds, c in HTTP_STATUS if isinstance(exc, kinds)), status.HTTP_500_INTERNAL_SERVER_ERROR)
        headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=code, headers=headers)

    return app


class BodyLimit:
    """ASGI middleware: a request's body is read up to `max_bytes` and a larger one refused with 413, by its
    Content-Length before anything is read, or as soon as a streamed body passes the limit; the app then gets
    the body from memory. An oversized request costs the server neither memory nor parsing."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(f"request body of {int(declared)} bytes", scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._refuse("request body", scope, receive, send)
            more = message.get("more_body", False)
        body = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return body.pop() if body else await receive()  # then: the client's disconnect, if it goes

        return await self.app(scope, replay, send)

    async def _refuse(self, what: str, scope, receive, send) -> None:
        error = RequestTooLargeError(f"{what} is over the server's limit of {self.max_bytes} bytes "
                                     "(FEATURE_PLATFORM_SERVING_MAX_BODY_BYTES)")
        response = JSONResponse({"error": type(error).__name__, "detail": str(error)},
                                status_code=status.HTTP_413_CONTENT_TOO_LARGE)
        await response(scope, receive, send)


def app_from_env() -> FastAPI:
    """The app of the platform the FEATURE_PLATFORM_* environment configures (uvicorn's factory)."""
    from feature_platform.platform import FeaturePlatform

    return build_app(FeaturePlatform.from_env())


def _health(platform, store) -> dict[str, str]:
    checks = {}
    try:
        store.registry.list_projects(allow_cache=True)
        checks["registry"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure makes the server unhealthy
        checks["registry"] = f"error: {type(exc).__name__}"
    try:
        _ping(platform.runtime.online)
        checks["online_store"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["online_store"] = f"error: {type(exc).__name__}"
    return checks


def _ping(online) -> None:
    if online.redis is not None:
        online.redis.reads.ping()  # the read client: fails within the read budget
    else:
        import sqlite3

        with sqlite3.connect(f"file:{online.sqlite.path}?mode=ro", uri=True,
                             timeout=online.settings.online_read_timeout_sec) as conn:
            conn.execute("SELECT 1").fetchone()
