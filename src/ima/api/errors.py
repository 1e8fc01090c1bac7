"""Errors as OpenAI clients expect them: `{"error": {message, type, param, code}}`.

Every failure the API reports goes through here: validation errors name the field
(`param`), limits carry `Retry-After`, and unexpected exceptions become a plain 500
that says nothing of the internals (the details go to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}


def body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    error_type = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        body(exc.status, exc.message, exc.param, exc.code), exc.status, headers=exc.headers
    )


def json_path(location: Sequence[str | int], sent: Any, kind: str) -> str | None:
    """The field an error is about, as a JSON path of what the client sent
    (`messages[14].content`), not pydantic's location: that also names the union
    members it tried (`constrained-str`, `list[ContentPart]`), which are no field of
    the request. A name absent from what was sent is kept only as the missing field."""
    path, here = "", sent
    for depth, part in enumerate(location):
        if isinstance(part, int):
            path += f"[{part}]"
            here = here[part] if isinstance(here, list) and -len(here) <= part < len(here) else None
        elif isinstance(here, dict) and part in here:
            path += f".{part}" if path else part
            here = here[part]
        elif kind == "missing" and depth == len(location) - 1:
            path += f".{part}" if path else part
    return path or None


def _param(error: dict[str, Any], sent: Any) -> str | None:
    """The field a validation error is about, named as the client knows it."""
    kind, location = error.get("type", ""), tuple(error.get("loc", ()))
    where, rest = (location[0], location[1:]) if location else ("body", ())
    if where == "body":
        return json_path(rest, sent, kind) or "body"
    return str(rest[0]) if rest else None  # a query, path or header parameter: a flat name


def _invalid(exc: RequestValidationError) -> JSONResponse:
    found = exc.errors() or [{}]
    if found[0].get("type") == "json_invalid":  # its location is an offset, not a field
        return JSONResponse(body(400, "body: not valid JSON", "body", "invalid_json"), 400)
    # a union reports each member's error: the one reaching deepest into what was sent
    # says most (`messages[0].content[0].text` rather than `messages[0].content`)
    param, error = max(((_param(e, exc.body), e) for e in found),
                       key=lambda pair: len(pair[0] or ""))  # fmt: skip
    message = error.get("msg", "invalid")
    return JSONResponse(
        body(400, f"{param}: {message}" if param else message, param, "invalid_value"), 400
    )


def _forget(exc: BaseException) -> None:
    """Drop a handled exception's traceback and causes. A traceback holds the frames it
    passed through, their locals hold the exception: a cycle, which keeps the request's
    body (a parse failure's whole input) until the collector's rare full pass
    (`ima.ingest.tune_gc`); a flood of refused requests grew the API process by 0.6 MB
    a request."""
    exc.__traceback__ = None
    exc.__cause__ = exc.__context__ = None


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        _forget(exc)
        return response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        _forget(exc)
        return _invalid(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        _forget(exc)
        return JSONResponse(body(exc.status_code, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        _forget(exc)
        return JSONResponse(body(500, "internal error"), 500)
