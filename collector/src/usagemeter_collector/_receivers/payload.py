"""OTLP/HTTP bodies: content types, gzip, protobuf and OTLP JSON (hex ids) into messages."""

from __future__ import annotations

import base64
import enum
import json
import zlib
from collections.abc import Iterator
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from usagemeter_collector._errors import PayloadError

M = TypeVar("M", bound=Message)

_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_METRIC_KINDS = ("sum", "gauge", "histogram", "exponentialHistogram", "exponential_histogram", "summary")
# One byte is never a valid id, so an id that is not hex is rejected downstream with its reason.
_NOT_HEX = base64.b64encode(b"\x00").decode("ascii")
#: Messages nested deeper are refused, as the protobuf parser refuses them in binary requests.
_MAX_MESSAGE_DEPTH = 100
_MAX_REASON_CHARS = 600


class Encoding(enum.Enum):
    """The two OTLP/HTTP encodings and their media types."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


def encoding_of(content_type: str | None) -> Encoding:
    """The encoding a Content-Type names, or PayloadError 415."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    for encoding in Encoding:
        if media_type == encoding.value:
            return encoding
    shown = media_type or "none"
    raise PayloadError(415, f"unsupported Content-Type {shown!r}: use application/x-protobuf or application/json")


def decompress(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body without its Content-Encoding (none or gzip), at most ``max_bytes`` long."""
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding != "gzip":
        raise PayloadError(415, f"unsupported Content-Encoding {coding!r}: use gzip or none")
    # A gzip body is one or more members, each a complete stream; all of them make up the request.
    parts: list[bytes] = []
    size, rest = 0, body
    while rest or not parts:
        data, rest = _gunzip_member(rest, max_bytes - size, max_bytes)
        size += len(data)
        parts.append(data)
    return b"".join(parts)


def _gunzip_member(body: bytes, room: int, max_bytes: int) -> tuple[bytes, bytes]:
    """The first gzip member of ``body`` decompressed (at most ``room`` bytes), and the bytes after it."""
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        data = inflater.decompress(body, room + 1)
    except zlib.error as exc:
        raise PayloadError(400, f"invalid gzip body: {exc}") from exc
    if len(data) > room:
        raise PayloadError(413, f"decompressed body exceeds the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise PayloadError(400, "invalid gzip body: truncated stream")
    return data, inflater.unused_data


def parse(body: bytes, encoding: Encoding, message_type: type[M]) -> M:
    """``body`` as a ``message_type`` message, or PayloadError 400 saying what is wrong."""
    message = message_type()
    name = message_type.DESCRIPTOR.name
    if encoding is Encoding.PROTOBUF:
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise PayloadError(400, f"malformed protobuf {name} (truncated or corrupt): {exc}") from exc
        return message
    document = _json_object(body, name)
    for holder in _id_holders(document):
        _hex_ids_to_base64(holder)
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True, max_recursion_depth=_MAX_MESSAGE_DEPTH)
    except (json_format.ParseError, TypeError, ValueError, OverflowError) as exc:
        # OverflowError: an enum given as Infinity, which the mapping converts with int().
        raise PayloadError(400, _reason(f"invalid OTLP JSON {name}: {exc}")) from exc
    except SystemError as exc:
        # upb reports a key it cannot encode (an unpaired surrogate escape) only as a SystemError.
        if not isinstance(exc.__cause__, UnicodeError):
            raise
        raise PayloadError(400, f"invalid OTLP JSON {name}: a key is not valid Unicode") from exc
    return message


def _json_object(body: bytes, name: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(400, f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        # The parser gives up past the interpreter's recursion limit, long after any OTLP document ends.
        raise PayloadError(400, "invalid JSON: nested too deeply") from exc
    if not isinstance(document, dict):
        raise PayloadError(400, f"invalid OTLP JSON {name}: the body must be a JSON object")
    return document


def _reason(text: str) -> str:
    """``text`` fit to answer with: unpaired surrogates escaped, and its middle left out past a few hundred
    characters (a parse error's path repeats once per level of nesting)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) <= _MAX_REASON_CHARS:
        return text
    half = _MAX_REASON_CHARS // 2
    return f"{text[:half]} … {text[-half:]}"


def serialize(message: Message, encoding: Encoding) -> bytes:
    """``message`` in ``encoding``."""
    if encoding is Encoding.PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def _children(node: Any, *keys: str) -> Iterator[dict[str, Any]]:
    """The objects in the lists under ``keys`` of ``node``; malformed shapes are left to the parser."""
    if not isinstance(node, dict):
        return
    for key in keys:
        items = node.get(key)
        if isinstance(items, list):
            yield from (item for item in items if isinstance(item, dict))


def _id_holders(document: Any) -> Iterator[dict[str, Any]]:
    """Every span, link and exemplar object of a traces or metrics document."""
    for resource in _children(document, "resourceSpans", "resource_spans"):
        for scope in _children(resource, "scopeSpans", "scope_spans"):
            for span in _children(scope, "spans"):
                yield span
                yield from _children(span, "links")
    for resource in _children(document, "resourceMetrics", "resource_metrics"):
        for scope in _children(resource, "scopeMetrics", "scope_metrics"):
            for metric in _children(scope, "metrics"):
                for kind in _METRIC_KINDS:
                    for point in _children(metric.get(kind), "dataPoints", "data_points"):
                        yield from _children(point, "exemplars")


def _hex_ids_to_base64(holder: dict[str, Any]) -> None:
    # OTLP JSON writes ids as hex; the protobuf JSON mapping reads bytes as base64.
    for key in _ID_KEYS:
        value = holder.get(key)
        if isinstance(value, str) and value:
            try:
                holder[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                holder[key] = _NOT_HEX
