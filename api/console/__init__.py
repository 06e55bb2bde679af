"""The dispatcher's console: server-rendered pages (sign-in, console, refusal), its scripts and styles, and the
road geometry of crews' routes.

Pages are Jinja2 templates rendered here; the scripts in ``static/`` are small plain ES modules (no build step)
that fill the page from the JSON routes and keep it current from the SSE stream. Leaflet comes from XStatic, like
the maps. Nothing is loaded from outside the app.
"""

from api.console.render import console_html, forbidden_html, signin_html

__all__ = ["console_html", "forbidden_html", "signin_html"]
