"""OTLP attribute values rendered as the strings the raw tables keep."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def render_value(value: AnyValue) -> str:
    """An AnyValue as text: strings as they are, scalars as literals, arrays and maps as JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)


def text_bytes(text: str) -> int:
    """The length of ``text`` in UTF-8 bytes."""
    # ASCII is the common case, and isascii() is a flag lookup: no copy.
    return len(text) if text.isascii() else len(text.encode())


def rendered_bytes(value: AnyValue) -> int:
    """The length in UTF-8 bytes of ``render_value(value)``, without rendering a string."""
    text = value.string_value
    return text_bytes(text) if text else text_bytes(render_value(value))


def attribute_map(attributes: Iterable[KeyValue]) -> dict[str, str]:
    """Key/value attributes as a ``Map(String, String)`` value (the last of repeated keys wins)."""
    return {kv.key: render_value(kv.value) for kv in attributes}


def _plain(value: AnyValue) -> Any:
    """An AnyValue as a JSON-ready Python value."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    if kind is None:
        return None
    return getattr(value, kind)
