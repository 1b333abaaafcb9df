"""``carebeacon web``: the care manager's queue, the clinician's trends, the admin API, FHIR R4
and the billing ledger, in one FastAPI app.

``create_app(settings)`` builds the app (tests start it under uvicorn on a free port);
``main(argv)`` runs it. Static assets (htmx, uPlot, Swagger UI) are vendored under
``web/static/vendor``: nothing is loaded from a CDN.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from carebeacon import broker, systemd
from carebeacon.logs import configure_logging
from carebeacon.settings import Settings
from web import (
    _admin,
    _billing_routes,
    _fhir,
    _login,
    _patient,
    _programs,
    _quarantine,
    _queue,
    _symptoms,
    _thresholds,
)
from web._db import make_pool
from web._headers import SecurityHeaders
from web._openapi import CareBeaconAPI
from web._state import AppState, Provisioner
from web._timing import ServerTiming

__all__ = ["create_app", "main"]

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
DEFAULT_TOKEN_LIFETIME = timedelta(days=90)
_API_PREFIXES = ("/api/", "/fhir/", "/openapi.json")


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(_API_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "") or "hx-request" in request.headers


def create_app(
    settings: Settings,
    *,
    conninfo: str | None = None,
    provision_gateway: Provisioner | None = None,
    secure_cookies: bool = True,
    pool_size: int = 10,
    token_lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
) -> FastAPI:
    """The app. ``conninfo`` overrides the settings' database (tests use a fresh one);
    ``provision_gateway(gateway_id, password)`` defaults to the project's broker;
    ``token_lifetime`` is how long an API token lives when its creator names no expiry."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    pool = make_pool(conninfo or settings.pg_conninfo(), max_size=pool_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        stop_watchdog = asyncio.Event()  # Type=notify units: see carebeacon.systemd
        watchdog = asyncio.create_task(systemd.watchdog_task(stop_watchdog))
        try:
            async with _queue.QueueNotifier(pool) as notifier:
                state.extra["notifier"] = notifier
                systemd.notify_ready()
                yield
        finally:
            stop_watchdog.set()
            await watchdog
            await pool.close()

    app = CareBeaconAPI(
        title="CareBeacon",
        version="1",
        summary="Remote patient monitoring: queue, trends, admin API, FHIR R4, billing ledger",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    state = AppState(
        settings=settings,
        pool=pool,
        templates=templates,
        provision_gateway=provision_gateway or broker.provision_gateway_credentials,
        secure_cookies=secure_cookies,
        token_lifetime=token_lifetime,
    )
    app.state.cb = state
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ServerTiming)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="CareBeacon API",
            swagger_js_url="/static/vendor/swagger-ui-bundle-5.35.0.js",
            swagger_css_url="/static/vendor/swagger-ui-5.35.0.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request):
            if exc.status_code == 401:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return _login.login_page(request, status_code=401, next_url=target)
            return templates.TemplateResponse(
                request,
                "error.html",
                {"status": exc.status_code, "detail": exc.detail, "principal": None},
                status_code=exc.status_code,
                headers=exc.headers,
            )
        if request.url.path.startswith("/fhir/"):
            return _fhir.operation_outcome(exc.status_code, str(exc.detail), exc.headers)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(psycopg.errors.IntegrityError)
    async def integrity_error(request: Request, exc: psycopg.errors.IntegrityError) -> JSONResponse:
        if isinstance(exc, psycopg.errors.UniqueViolation | psycopg.errors.ExclusionViolation):
            return JSONResponse({"detail": "conflicts with an existing record"}, status_code=409)
        if isinstance(exc, psycopg.errors.ForeignKeyViolation):
            return JSONResponse(
                {"detail": "refers to a record that does not exist"}, status_code=422
            )
        return JSONResponse({"detail": "violates a data rule"}, status_code=422)

    @app.exception_handler(psycopg.DataError)
    async def data_error(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # Input the database cannot hold: a NUL character in a text, a number out of range
        # (both answered 500; found by schemathesis). Not the message: it quotes the value.
        logger.warning(
            "refused data the database cannot store: %s %s", type(exc).__name__, exc.sqlstate
        )
        return JSONResponse({"detail": "a value cannot be stored as given"}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        if request.url.path.startswith("/fhir/"):
            text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
            return _fhir.operation_outcome(422, text)
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    app.include_router(_login.router)
    app.include_router(_queue.router)
    app.include_router(_patient.router)
    app.include_router(_admin.router)
    app.include_router(_fhir.router)
    app.include_router(_billing_routes.router)
    app.include_router(_quarantine.router)
    app.include_router(_thresholds.router)
    app.include_router(_programs.router)
    app.include_router(_symptoms.router)
    return app


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="carebeacon web", description="run the web app and API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--insecure-cookies",
        action="store_true",
        help="drop the Secure flag on cookies (only behind plain HTTP on a non-localhost host)",
    )
    parser.add_argument(
        "--token-days",
        type=int,
        default=DEFAULT_TOKEN_LIFETIME.days,
        help="how long an API token lives when its creator names no expiry (default: %(default)s)",
    )
    parser.add_argument("--database", help="database name (default: CAREBEACON_PG_DATABASE)")
    args = parser.parse_args(argv)
    if args.token_days < 1:
        parser.error("--token-days must be at least 1")
    settings = Settings.from_env()
    if args.database:
        settings = settings.model_copy(update={"pg_database": args.database})
    # uvicorn's access log prints paths, which carry patient ids: off here, WARNING in the setup
    configure_logging(settings.log_level, json=settings.log_format == "json")
    import uvicorn

    app = create_app(
        settings,
        secure_cookies=not args.insecure_cookies,
        token_lifetime=timedelta(days=args.token_days),
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,  # open event streams must not hold a shutdown
    )
    return 0
