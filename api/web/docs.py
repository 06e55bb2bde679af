"""The API documentation pages (Swagger UI at ``/docs``, ReDoc at ``/redoc``) with every asset served by the app.

FastAPI's defaults load Swagger UI and ReDoc (and a favicon and fonts) from public CDNs; the
project's rule is that nothing is fetched from the internet at run time. The assets come from the
``fastapi-offline`` package (Swagger UI 5 and ReDoc 2, which render OpenAPI 3.1), mounted under
:data:`ASSETS`, so :data:`api.web.limits.DOCS_CSP` can allow only ``'self'``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: Where the documentation assets are served.
ASSETS = "/docs-assets"
SWAGGER_JS, SWAGGER_CSS = f"{ASSETS}/swagger-ui-bundle.js", f"{ASSETS}/swagger-ui.css"
REDOC_JS, FAVICON = f"{ASSETS}/redoc.standalone.js", f"{ASSETS}/favicon.png"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def install(app: FastAPI) -> None:
    """Mount the assets and add ``/docs``, its OAuth2 redirect and ``/redoc`` (create the app with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")
    title, openapi_url = app.title, app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        # validatorUrl: Swagger UI would otherwise show a badge image from validator.swagger.io
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{title} — API", swagger_js_url=SWAGGER_JS,
                                   swagger_css_url=SWAGGER_CSS, swagger_favicon_url=FAVICON,
                                   oauth2_redirect_url=OAUTH2_REDIRECT, swagger_ui_parameters={"validatorUrl": None})

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{title} — API", redoc_js_url=REDOC_JS,
                              redoc_favicon_url=FAVICON, with_google_fonts=False)
