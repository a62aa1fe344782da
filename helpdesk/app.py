"""The application factory: routers, static files, and the lifespan that owns engine and bus."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from helpdesk.auth import api as auth_api
from helpdesk.channels import api as channels_api
from helpdesk.config import Settings, get_settings
from helpdesk.customers import api as customers_api
from helpdesk.db import create_engine, create_sessionmaker
from helpdesk.errors import install_error_handlers
from helpdesk.limits import BodyLimitMiddleware
from helpdesk.profiles import api as profiles_api
from helpdesk.realtime.bus import MemoryBus
from helpdesk.realtime.service import NOTIFY
from helpdesk.tickets import api as tickets_api
from helpdesk.web import pages

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the engine and bus on start, release them on stop."""
    settings: Settings = app.state.settings
    engine = create_engine(settings.database_url)
    bus = MemoryBus()
    await bus.start()
    app.state.engine = engine
    app.state.bus = bus
    app.state.sessionmaker = create_sessionmaker(engine, info={NOTIFY: bus.notify})
    await pages.startup(app)
    try:
        yield
    finally:
        await bus.stop()
        await engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """A configured app; nothing connects until the lifespan starts."""
    app = FastAPI(title="Helpdesk", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings or get_settings()
    install_error_handlers(app)
    pages.install(app, app.state.settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=app.state.settings.max_body_bytes)
    for module in (auth_api, tickets_api, customers_api, profiles_api, channels_api):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
