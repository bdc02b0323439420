"""The API documentation: the OpenAPI document at /schema/openapi.json and
Swagger UI at /schema, both served by the service itself. Swagger UI's
JavaScript and CSS come from the `swagger-ui-python` package (a maintained
bundle of swagger-ui-dist), not from a CDN, so the pages render on a
machine without internet access.

The documentation is public: it describes an open-source API and holds no
data (`LEDGER_DOCS=false` removes it). "Authorize" in the page takes an API
key for "Try it out"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import swagger_ui
from litestar import Request, Router
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from ledger import __version__
from ledger.api import access, openapi_document
from ledger.settings import Settings

PATH = "/schema"
ASSETS = f"{PATH}/assets"
_ASSET_DIR = Path(swagger_ui.__file__).parent / "static"
# Only what the page loads (the package carries Swagger Editor too).
_ASSET_FILES = (
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-32x32.png",
)


class _Completed:
    """The document as `openapi_document.complete` makes it, once per
    process (Litestar builds the raw one once, too)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.json: bytes | None = None

    def render_json(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        if self.json is None:
            handlers = {
                (route.path_format, method): handler.opt
                for route in request.app.routes
                for handler in getattr(route, "route_handlers", [])
                for method in handler.http_methods
            }
            document = openapi_document.complete(openapi_schema, handlers, self.settings)
            self.json = msgspec.json.encode(document)
        return self.json


class _RendersCompleted:
    """A render plugin that renders the completed document."""

    def __init__(self, completed: _Completed, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.completed = completed

    def render_json(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return self.completed.render_json(request, openapi_schema)


class _Json(_RendersCompleted, JsonRenderPlugin):
    pass


class _Swagger(_RendersCompleted, SwaggerRenderPlugin):
    pass


def openapi_config(settings: Settings) -> OpenAPIConfig:
    completed = _Completed(settings)
    return OpenAPIConfig(
        title="Ledger",
        version=__version__,
        description=(
            "A double-entry ledger. Every route but /health, /ready and this documentation "
            "needs an API key (`Authorization: Bearer lk_...`) with the scope the operation "
            "names; errors are RFC 9457 problem JSON, and the `code` of each is stable."
        ),
        path=PATH,
        use_handler_docstrings=True,
        render_plugins=[
            _Swagger(
                completed,
                path=["/", "/swagger"],
                js_url=f"{ASSETS}/swagger-ui-bundle.js",
                css_url=f"{ASSETS}/swagger-ui.css",
                standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
            ),
            _Json(completed),
        ],
        openapi_router=Router(
            path=PATH,
            route_handlers=[],
            opt={access.SCOPE_OPT: access.PUBLIC},
            include_in_schema=False,
        ),
        components=Components(
            security_schemes={
                access.BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key, lk_<key id>_<secret>. Each operation lists "
                    "the scope it needs.",
                )
            }
        ),
    )


def assets_router() -> Router:
    """Swagger UI's files, from the installed package."""
    return create_static_files_router(
        path=ASSETS,
        directories=[_ASSET_DIR],
        include_in_schema=False,
        opt={access.SCOPE_OPT: access.PUBLIC},
        name="docs-assets",
        guards=[_only_page_files],
        cache_control=CacheControlHeader(max_age=86_400, public=True),
    )


def _only_page_files(connection: ASGIConnection, _handler: object) -> None:
    """Nothing but the page's own files (the package holds more)."""
    if str(connection.path_params.get("file_path", "")).lstrip("/") not in _ASSET_FILES:
        raise NotFoundException(f"no documentation asset {connection.url.path!r}")


def router(settings: Settings) -> Router:
    """Swagger UI's files, when the docs are served (an empty router when not)."""
    return Router(path="/", route_handlers=[assets_router()] if settings.docs else [])
