"""A faster form of the ``feature.usage`` rule (:mod:`usagemeter_collector._checks.rule`): the lean pass's bulk check.

Pinned by ``tests/collector/test_lean.py::test_the_lean_pass_vouches_only_for_what_the_full_checks_keep_whole``
(its 100-point cases go through the bulk check and must match the point-by-point check) and by
``tests/collector/test_plain_points.py``: ``test_one_invalid_value_among_many_fails_the_bulk_check``,
``test_ids_over_the_configured_limit_fail_the_bulk_check`` and
``test_values_over_the_configured_maximum_fail_the_bulk_check``.

Many plain ``feature.usage`` points are checked at once, as rows of bytes.

Points of one request with the same encoded length nearly always share one
layout: the same fields in the same order, the same attribute keys, the same
string lengths. Only the timestamps, the value and the characters of the ids
differ. So one point of each length is read field by field, every other point
of that length must equal it byte for byte outside those places, and the
places themselves are checked as numpy columns. That is a handful of array
operations per distinct length instead of a dozen Python steps per point.

A point is plain when it holds exactly: a start time, a time, one value (an int
or a double), and two attributes, ``user.id`` and ``feature.key``, each a
non-empty string shorter than 128 bytes and within the id length limit, and
nothing else. Anything else (exemplars, flags, another attribute, a repeated
field) makes the check answer False, and the caller decides point by point.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from usagemeter_clickhouse import tables
from usagemeter_collector._checks.rule import PointRules

#: Below this many points the per-point checks are as cheap as the setup of the bulk ones.
MIN_POINTS = 32
#: More distinct lengths than one per this many points: ids vary too much for the bulk check to pay.
_POINTS_PER_LENGTH = 16

_KEYS = frozenset({tables.USER_ATTRIBUTE.encode(), tables.FEATURE_ATTRIBUTE.encode()})
_FIXED64, _LENGTH_DELIMITED, _VARINT, _FIXED32 = 1, 2, 0, 5
_START, _TIME, _DOUBLE, _INT, _ATTRIBUTE = 2, 3, 4, 6, 7
_KEY, _VALUE, _STRING = 1, 2, 1
_ONE_BYTE_LENGTH = 0x80

# (field number, wire type, offset of the payload, length of the payload)
_Field = tuple[int, int, int, int]


class Layout(NamedTuple):
    """Where a plain point's variable parts are: the rest of its bytes is the same in every point like it."""

    start: int
    time: int
    value: int
    value_is_double: bool
    #: True where a byte may differ between points of this layout (times, value, characters of the ids).
    variable: np.ndarray


def all_plain_and_valid(points: Sequence[bytes], rules: PointRules) -> bool:
    """True when every point is plain and valid under ``rules``; False when the bulk check cannot tell
    (a point is not plain, or not valid, or the points have too many lengths to be worth it)."""
    if len(points) < MIN_POINTS:
        return False
    lengths = np.fromiter(map(len, points), dtype=np.int64, count=len(points))
    order = np.argsort(lengths, kind="stable")
    starts = np.flatnonzero(np.diff(lengths[order])) + 1
    if len(starts) + 1 > max(1, len(points) // _POINTS_PER_LENGTH):
        return False
    for group in np.split(order, starts):
        rows = operator.itemgetter(*group.tolist())(points) if len(group) > 1 else (points[int(group[0])],)
        if not _group_valid(rows, rules):
            return False
    return True


def _group_valid(rows: tuple[bytes, ...], rules: PointRules) -> bool:
    """Whether points of one length all share the first one's plain layout and hold valid values."""
    (earliest, latest), max_value, max_id = rules
    layout = plain_layout(rows[0], max_id)
    if layout is None:
        return False
    matrix = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), len(rows[0]))
    fixed = ~layout.variable
    if not (matrix[:, fixed] == matrix[0, fixed]).all():
        return False
    times = _column(matrix, layout.time, "<u8")
    if not ((times >= earliest) & (times <= latest)).all():
        return False
    if not (_column(matrix, layout.start, "<u8") <= latest).all():
        return False
    values = _column(matrix, layout.value, "<f8" if layout.value_is_double else "<i8")
    # NaN fails both comparisons, as it should.
    return bool(((values >= 0) & (values <= max_value)).all())


def _column(matrix: np.ndarray, offset: int, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(matrix[:, offset : offset + 8]).view(dtype)[:, 0]


def plain_layout(point: bytes, max_id_bytes: int) -> Layout | None:
    """The layout of ``point`` when it is plain (see the module's docstring) with ids of at most
    ``max_id_bytes``, else None."""
    fields = _fields(point, 0, len(point))
    if fields is None:
        return None
    numbers = sorted(number for number, *_ in fields)
    if numbers not in ([_START, _TIME, _DOUBLE, _ATTRIBUTE, _ATTRIBUTE], [_START, _TIME, _INT, _ATTRIBUTE, _ATTRIBUTE]):
        return None
    variable = np.zeros(len(point), dtype=bool)
    offsets: dict[int, int] = {}
    keys: set[bytes] = set()
    for number, wire, offset, length in fields:
        if number == _ATTRIBUTE:
            key = _plain_attribute(point, wire, offset, length, max_id_bytes, variable)
            if key is None:
                return None
            keys.add(key)
        elif wire != _FIXED64:
            return None
        else:
            offsets[number] = offset
            variable[offset : offset + 8] = True
    if keys != _KEYS:
        return None
    value_is_double = _DOUBLE in offsets
    value = offsets[_DOUBLE] if value_is_double else offsets[_INT]
    return Layout(offsets[_START], offsets[_TIME], value, value_is_double, variable)


def _plain_attribute(
    point: bytes, wire: int, offset: int, length: int, max_bytes: int, variable: np.ndarray
) -> bytes | None:
    """The key of an attribute whose value is a plain string of at most ``max_bytes`` (its characters marked
    variable), else None."""
    fields = _fields(point, offset, offset + length) if wire == _LENGTH_DELIMITED else None
    if fields is None or [(number, wire) for number, wire, *_ in fields] != [
        (_KEY, _LENGTH_DELIMITED),
        (_VALUE, _LENGTH_DELIMITED),
    ]:
        return None
    (_, _, key_offset, key_length), (_, _, value_offset, value_length) = fields
    text = _fields(point, value_offset, value_offset + value_length)
    if text is None or len(text) != 1:
        return None
    number, text_wire, text_offset, text_length = text[0]
    # One field, string_value, its length in one byte and within the id limit: what the per-point check accepts.
    if (number, text_wire) != (_STRING, _LENGTH_DELIMITED) or not 0 < text_length <= longest_plain_id(max_bytes):
        return None
    variable[text_offset : text_offset + text_length] = True
    return point[key_offset : key_offset + key_length]


def longest_plain_id(max_id_bytes: int) -> int:
    """The longest id, in bytes, of a plain point under a limit of ``max_id_bytes``: its length fits in one byte."""
    return min(max_id_bytes, _ONE_BYTE_LENGTH - 1)


def _fields(data: bytes, position: int, end: int) -> list[_Field] | None:
    """The fields encoded in ``data[position:end]``, or None when they do not parse."""
    fields: list[_Field] = []
    while position < end:
        read = _varint(data, position, end)
        if read is None:
            return None
        key, position = read
        number, wire = key >> 3, key & 7
        if wire in (_FIXED64, _FIXED32):
            length = 8 if wire == _FIXED64 else 4
        elif wire == _LENGTH_DELIMITED:
            read = _varint(data, position, end)
            if read is None:
                return None
            length, position = read
        elif wire == _VARINT:
            read = _varint(data, position, end)
            if read is None:
                return None
            length = read[1] - position
        else:
            return None
        if position + length > end:
            return None
        fields.append((number, wire, position, length))
        position += length
    return fields


def _varint(data: bytes, position: int, end: int) -> tuple[int, int] | None:
    """The varint at ``position`` and the position after it, or None when it runs past ``end``."""
    value = shift = 0
    while position < end and shift < 64:
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return value, position
        shift += 7
    return None
