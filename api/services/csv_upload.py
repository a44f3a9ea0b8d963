"""The CSV file of an upload request as a stream of byte chunks: the body itself
(`text/csv`), or the part named `file` of a `multipart/form-data` body.

Invariant: nothing of the body is kept: each piece of the file is handed on as it arrives
(python-multipart's streaming parser, no spooled file), the other parts are skipped. A body
whose Content-Length is over the file limit (plus `MULTIPART_OVERHEAD`) is refused before a
byte of it is read, and a body that grows past it while streaming when it does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from api.errors import ApiError

FILE_FIELD = "file"
CSV_MEDIA_TYPES = (b"text/csv", b"application/csv")
# The multipart envelope and small form fields beside the file.
MULTIPART_OVERHEAD = 64 * 1024


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413, "CSV_TOO_LARGE", f"the file is over {max_bytes} bytes", {"limitBytes": max_bytes}
    )


def upload_chunks(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    """The file's bytes as they arrive. Refuses at once (ApiError) a body of another media
    type (415), a multipart body without a boundary (400) or one declared too large (413)."""
    media, options = parse_options_header(request.headers.get("content-type"))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise _too_large(max_bytes)
    if media in CSV_MEDIA_TYPES:
        return _body(request)
    if media == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise ApiError(400, "BAD_REQUEST", "the multipart Content-Type names no boundary")
        return _file_part(_body(request), boundary, max_bytes + MULTIPART_OVERHEAD)
    raise ApiError(
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        f"send the file as text/csv, or as the part {FILE_FIELD!r} of multipart/form-data",
    )


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect as exc:
        raise ApiError(400, "BAD_REQUEST", "the client left before the end of the body") from exc


class _FilePart:
    """python-multipart's callbacks: the data of the first part named FILE_FIELD, kept
    only until the caller takes it (`take`)."""

    def __init__(self) -> None:
        self.found = False
        self._reading = False
        self._data: list[bytes] = []
        self._header = b""
        self._value = b""
        self._disposition = b""

    def take(self) -> bytes:
        data, self._data = b"".join(self._data), []
        return data

    def on_part_begin(self) -> None:
        self._disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header = self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._reading = not self.found and options.get(b"name") == FILE_FIELD.encode()
        self.found = self.found or self._reading

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._reading:
            self._data.append(data[start:end])

    def on_part_end(self) -> None:
        self._reading = False


async def _file_part(
    body: AsyncIterator[bytes], boundary: bytes, max_body_bytes: int
) -> AsyncIterator[bytes]:
    part = _FilePart()
    size = 0
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": part.on_part_begin,
                "on_header_field": part.on_header_field,
                "on_header_value": part.on_header_value,
                "on_header_end": part.on_header_end,
                "on_headers_finished": part.on_headers_finished,
                "on_part_data": part.on_part_data,
                "on_part_end": part.on_part_end,
            },
        )
        async for chunk in body:
            size += len(chunk)
            if size > max_body_bytes:
                raise _too_large(max_body_bytes - MULTIPART_OVERHEAD)
            parser.write(chunk)
            data = part.take()
            if data:
                yield data
        parser.finalize()
    except FormParserError as exc:
        raise ApiError(400, "BAD_REQUEST", f"the multipart body does not parse: {exc}") from exc
    if not part.found:
        raise ApiError(
            422, "CSV_FILE_MISSING", f"the multipart body has no part named {FILE_FIELD!r}"
        )
