"""The web app: one page, plain HTML, CSS and JavaScript, served by `ima serve` at `/`.

It speaks only the public API (`/v1/...`), as any client would. Post text is always
set as text, never parsed as HTML, and a strict Content-Security-Policy (scripts and
styles from this server only, no inline code) backs that up.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": POLICY})


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
