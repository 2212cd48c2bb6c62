"""GET /dashboard: the product dashboard page, its script and style, and plotly.js from the installed package.

The page and its assets hold no data: it signs the reader in and draws what /v1/analytics/* returns to
an analyst's or admin's access token, so the role is checked where the figures are.
"""

from importlib.resources import files
from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse

ASSETS = Path(str(files("serving"))) / "dashboard"
# No CDN: the machines serving this have no internet, and the app pins the chart code it ships with.
PLOTLY_JS = Path(str(files("plotly"))) / "package_data" / "plotly.min.js"
# Scripts and data only from this app; plotly.js sets inline styles on the charts it draws.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CACHE = {"Cache-Control": "public, max-age=3600"}

router = APIRouter(include_in_schema=False)


@router.get("/dashboard")
def dashboard() -> FileResponse:
    """The recommendations dashboard (sign in as an analyst or admin)."""
    return FileResponse(ASSETS / "index.html", media_type="text/html", headers=HEADERS | {"Cache-Control": "no-cache"})


@router.get("/dashboard/assets/{name}")
def asset(name: Literal["dashboard.js", "dashboard.css", "plotly.min.js"]) -> FileResponse:
    """The page's script and style, and the plotly.js of the installed plotly package."""
    path = PLOTLY_JS if name == "plotly.min.js" else ASSETS / name
    media = "text/css" if name.endswith(".css") else "text/javascript"
    return FileResponse(path, media_type=media, headers=HEADERS | CACHE)
