"""The web app: one page, plain HTML, CSS and JavaScript, served by `ima serve` at `/`.

It speaks only the public API (`/v1/...`), as any client would. Post text is always
set as text, never parsed as HTML, and a strict Content-Security-Policy (scripts and
styles from this server only, no inline code, never in a frame; audio also from the
page's own blob: URLs, for spoken answers) backs that up on every
HTML response, whatever its path (`/` and `/static/index.html` are the same page).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Message

STATIC = Path(__file__).parent / "static"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
#: on every response: no content-type guessing, no address leaked to linked sites
_ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
_HTML = (*_ALWAYS, (b"content-security-policy", POLICY.encode()), (b"x-frame-options", b"DENY"))
router = APIRouter(include_in_schema=False)


def headers_for(start: Message) -> tuple[tuple[bytes, bytes], ...]:
    """The safety headers a response (its `http.response.start`) should carry."""
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-type":
            return _HTML if value.startswith(b"text/html") else _ALWAYS
    return _ALWAYS


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
