"""The HTTP app of `feature-platform serve`: Feast's feature server, trimmed to what serving needs.

Feast's `/get-online-features` keeps Feast's request and response formats (and Feast's app its registry
refresh), behind the platform's authorization; its JSON is built straight from the platform's read
(`PlatformFeatureStore.online_response_dict`, equal to Feast's by test). `/push` and
`/health` are replaced: the push answers
with what the platform did (accepted, rejected, duplicates) and `/health` checks the online store
too, not only the registry. Feast's `/materialize*` and `/write-to-online-store` are not mounted:
materialization is a Dagster run, and raw online writes would bypass validation and newest-wins.

In front of every route, `Gate` checks the bearer token (every path but `/health`, the OpenAPI document and
its pages included) before the body is read, then bounds the body's size. Every answer is a status the
OpenAPI document lists, with a one-line `{"error", "detail"}` body that never echoes the request.
"""

from __future__ import annotations

import logging

import pandas as pd
from fastapi import FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from feast.data_source import PushMode
from feast.feature_server import GetOnlineFeaturesRequest, PushFeaturesRequest, get_app

from feature_platform.arguments import push_view_spec
from feature_platform.errors import (
    FeaturePlatformError,
    StoreUnavailableError,
    UnknownFeatureError,
    UnknownFeatureViewError,
    shorten,
)
from feature_platform.ingest import IngestResult
from feature_platform.serving.access import AccessDeniedError, AuthenticationError, Authorizer, Tokens
from feature_platform.serving.feature_store import PlatformFeatureStore

SERVED = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # kept from Feast's app as they are
PUBLIC = {"/health"}  # answered without a token (probes); everything else needs one when tokens are configured
PUSH_MODES = {"online": PushMode.ONLINE, "offline": PushMode.OFFLINE, "online_and_offline": PushMode.ONLINE_AND_OFFLINE}
REGISTRY_TTL_SEC = 60  # how often the server re-reads the registry (a new view appears within a minute)
log = logging.getLogger("feature_platform.serving")


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
    platform.runtime.apply()  # the server's start registers the views it serves; its reads never do
    store = PlatformFeatureStore(platform)
    app = get_app(store, registry_ttl_sec=REGISTRY_TTL_SEC)
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) in SERVED]
    # Feast's handler answers any exception with 500 and its text, logging it (and Starlette and uvicorn
    # again): unexpected errors are `Gate`'s instead, logged once, answered without the text.
    app.exception_handlers.pop(Exception, None)
    app.add_middleware(Gate, access=access, max_bytes=platform.settings.serving_max_body_bytes)
    app.openapi = _documented(app, app.openapi, authenticated=tokens is not None)
    max_entities = platform.settings.serving_max_entities

    @app.post("/get-online-features", responses=_errors(400, 401, 403, 404, 413, 503))
    async def get_online_features(request: GetOnlineFeaturesRequest, http: Request) -> JSONResponse:
        caller = http.state.caller
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

    @app.post("/push", responses={202: {"description": "`to: offline`: the batch is in the source's transport, for "
                                                     "the view's sensor"}, **_errors(400, 401, 403, 404, 413, 503)})
    async def push(request: PushFeaturesRequest, http: Request) -> JSONResponse:
        caller = http.state.caller
        view = await run_in_threadpool(push_view_spec, request.push_source_name)
        await run_in_threadpool(access.push, caller, view.name, http.url.path)
        if request.to not in PUSH_MODES:
            raise BadRequestError(f"push mode {shorten(request.to)} is not one of {sorted(PUSH_MODES)}")
        try:
            frame = pd.DataFrame(request.df)
        except ValueError as exc:
            raise BadRequestError(f"push body 'df' is not a table of equal-length columns: {exc}") from None
        result = await run_in_threadpool(store.push, request.push_source_name, frame, to=PUSH_MODES[request.to])
        if isinstance(result, IngestResult):
            return JSONResponse({"batch_id": result.batch_id, "received": result.received, "accepted": result.accepted,
                                 "rejected": result.rejected, "duplicates": result.duplicates})
        return JSONResponse({"batch_id": result, "received": len(frame)}, status_code=status.HTTP_202_ACCEPTED)

    @app.get("/health", responses={503: {"description": "the registry or the online store is unavailable"}})
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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default is a 422 quoting the whole input: a 400 naming where and what, never the input.
        problems = "; ".join(f"{'.'.join(str(part)[:40] for part in e.get('loc', ()))}: {e.get('msg', '')}"
                             for e in exc.errors()[:3])  # a location may hold a client's key: cut each part
        error = BadRequestError(_short(f"invalid request: {problems}"))
        return JSONResponse({"error": type(error).__name__, "detail": str(error)},
                            status_code=status.HTTP_400_BAD_REQUEST)

    return app


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


ERROR_SCHEMA = {"type": "object", "required": ["error", "detail"],
                "properties": {"error": {"type": "string", "description": "the error's type"},
                               "detail": {"type": "string", "description": "one line: what and where"}}}
ERROR_DESCRIPTIONS = {
    400: "bad request: malformed JSON, a body not of the documented shape, mismatched entity columns, a bad value",
    401: "missing or unknown bearer token",
    403: "the caller's roles do not grant this read or push",
    404: "unknown feature view, feature, feature service, push source, or a missing entity key",
    413: "body over FEATURE_PLATFORM_SERVING_MAX_BODY_BYTES, or more entity rows than "
         "FEATURE_PLATFORM_SERVING_MAX_ENTITIES",
    503: "a store (Redis, PostgreSQL) is unreachable",
}


def _errors(*codes: int) -> dict:
    return {code: {"description": ERROR_DESCRIPTIONS[code],
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            for code in codes}


def _documented(app: FastAPI, generate, authenticated: bool):
    """FastAPI's OpenAPI document, made to match what the server answers: no 422 (validation errors are 400),
    the error schema, and with tokens, the bearer scheme on every operation but `/health` (401 and 403 are
    listed only then)."""

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Error"] = ERROR_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        if authenticated:
            document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, operations in document["paths"].items():
            for operation in operations.values():
                operation["responses"].pop("422", None)
                if not authenticated:
                    for code in ("401", "403"):
                        operation["responses"].pop(code, None)
                operation["security"] = [{"bearer": []}] if authenticated and path not in PUBLIC else []
        app.openapi_schema = document
        return document

    return openapi


class Gate:
    """ASGI middleware in front of every route. 1. The bearer token, from the headers alone: a caller without
    one is refused (401) before a byte of its body is read, on every path but `/health`; the caller is handed
    to the routes as `request.state.caller`. 2. The body is read up to `max_bytes`, a larger one refused with
    413 (by its Content-Length before anything is read, or as soon as a streamed body passes the limit); the
    routes then get it from memory. 3. An unexpected error is logged once, with its traceback, and answered
    500 without its text."""

    def __init__(self, app, access: Authorizer, max_bytes: int):
        self.app = app
        self.access = access
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if scope["path"] not in PUBLIC:
            try:
                caller = self.access.authenticate(headers.get(b"authorization", b"").decode("latin-1") or None,
                                                  scope["path"])
            except AuthenticationError as exc:
                return await _answer(exc, status.HTTP_401_UNAUTHORIZED, scope, receive, send,
                                     headers={"WWW-Authenticate": "Bearer"})
            scope.setdefault("state", {})["caller"] = caller
        declared = headers.get(b"content-length", b"")
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

        started = False

        async def sending(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            return await self.app(scope, replay, sending)
        except Exception as exc:  # noqa: BLE001 - whatever a route raised that no handler answers
            log.exception("%s %s failed", scope["method"], scope["path"])
            if not started:
                await _answer(FeaturePlatformError(f"internal error ({type(exc).__name__}); the server logged it"),
                              status.HTTP_500_INTERNAL_SERVER_ERROR, scope, receive, send)

    async def _refuse(self, what: str, scope, receive, send) -> None:
        await _answer(RequestTooLargeError(f"{what} is over the server's limit of {self.max_bytes} bytes "
                                           "(FEATURE_PLATFORM_SERVING_MAX_BODY_BYTES)"),
                      status.HTTP_413_CONTENT_TOO_LARGE, scope, receive, send)


async def _answer(error: Exception, code: int, scope, receive, send, headers: dict | None = None) -> None:
    response = JSONResponse({"error": type(error).__name__, "detail": str(error)}, status_code=code, headers=headers)
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
    online.features.ping()
