"""One error shape for every 4xx: ``{"error": {"type", "message", "field"?}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

_STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    410: "gone",
    411: "length_required",
    412: "precondition_failed",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid",
    423: "locked",
    429: "too_many_requests",
    460: "checksum_mismatch",  # tus's own status for a body whose checksum does not match
    503: "unavailable",
}


# What each documented error status means, whatever the route (docs/ARCHITECTURE.md, API).
_DESCRIPTIONS = {
    400: "the body could not be read (malformed multipart, undecodable bytes)",
    401: "no valid API key (writes; reads too when SPOOL_PUBLIC_READS=false)",
    404: "no such resource",
    409: "the resource's state does not allow it",
    413: "the body is larger than the server's limit",
    415: "the body's Content-Type is not the one this operation takes",
    416: "the byte range is not satisfiable",
    422: "a parameter or field is invalid; `field` names it",
    503: "a service Spool depends on is unavailable; retry later",
}


class ErrorDetail(BaseModel):
    type: str = Field(description="a machine-readable kind, e.g. `invalid`, `not_found`")
    message: str = Field(description="what is wrong, for a person")
    field: str | None = Field(None, description="the parameter or field at fault, if one is")


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"type", "message", "field"?}}``."""

    error: ErrorDetail


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of the errors a route can answer, each with the one error
    body; ``descriptions`` (``e404="no video"``) say what a status means for this route."""
    return {
        status: {
            "model": ErrorBody,
            "description": descriptions.get(f"e{status}", _DESCRIPTIONS[status]),
        }
        for status in statuses
    }


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _STATUS_TYPES.get(status, "error")
        self.field = field
        self.headers = headers


def error_body(type_: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def error_response(
    status: int,
    message: str,
    *,
    type: str | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(type or _STATUS_TYPES.get(status, "error"), message, field),
        status_code=status,
        headers=headers,
    )


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    # ("body", "title") -> "title"; ("query", "q") -> "q"; ("body", 12) (JSON decode) -> None
    names = [str(p) for p in loc[1:] if not isinstance(p, int)] if loc else []
    return ".".join(names) or None


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = tuple(first.get("loc", ()))
    kind = first.get("type", "")
    if kind == "json_invalid":
        return error_response(
            422,
            f"request body is not valid JSON: {first.get('msg', '')}",
            type="malformed_json",
            field=None,
        )
    field = _field_of(loc)
    if kind == "extra_forbidden":
        message = f"{field}: is not a known field"
    elif kind == "missing":
        message = f"{field}: is required" if field else "request body is required"
    else:
        message = (
            f"{field}: {first.get('msg', 'is invalid')}"
            if field
            else str(first.get("msg", "invalid request"))
        )
    if (
        field is None
        and loc
        and loc[0] == "body"
        and kind in ("model_attributes_type", "dict_type")
    ):
        message = "request body must be a JSON object"
    return error_response(422, message, field=field)


def allowed_methods(request: Request) -> str:
    """Every method of every route at the request's path: Starlette's own 405 names only the
    first route's, though GET and POST /v1/videos are two routes (RFC 9110 15.5.6)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.message, type=exc.type, field=exc.field, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return error_response(exc.status_code, detail, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("spool.api").exception("unhandled error")
        return error_response(500, "internal error", type="internal")
