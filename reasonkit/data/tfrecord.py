"""Read TFDS/RLDS episodes (BridgeData V2's ``bridge_dataset``) without TensorFlow.

A TFRecord file is a sequence of ``uint64 length | uint32 masked-crc32c(length) | data | uint32 crc(data)``;
each ``data`` is a serialized ``tf.train.Example``, whose features TFDS flattens with ``/``
(``episode_metadata/file_path``, ``steps/observation/image_0`` with one encoded image per step). Only the
protobuf wire format is needed to read it. The length CRC is checked (cheap, catches misframed or truncated
files); the payload CRC is not (a pure-Python CRC over gigabytes of JPEGs would dominate the run time).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from reasonkit.errors import DataError


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise DataError(f"{path}: truncated TFRecord header")
            length, crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != crc:
                raise DataError(f"{path}: corrupt TFRecord (length checksum mismatch) at byte "
                                f"{f.tell() - 12}")
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                raise DataError(f"{path}: truncated TFRecord record")
            yield data


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of one message: ints for varints, memoryviews for the rest."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise DataError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def parse_example(data: bytes) -> dict[str, memoryview]:
    """``tf.train.Example`` -> {feature name: serialized ``Feature``}, decoded lazily by the helpers below."""
    features: dict[str, memoryview] = {}
    for number, _, value in _fields(memoryview(data)):
        if number != 1:  # Example.features
            continue
        for fnum, _, entry in _fields(value):
            if fnum != 1:  # Features.feature (map entry)
                continue
            key, feature = "", memoryview(b"")
            for enum, _, v in _fields(entry):
                if enum == 1:
                    key = bytes(v).decode()
                elif enum == 2:
                    feature = v
            features[key] = feature
    return features


def _list(feature: memoryview, kind: int) -> Iterator[tuple[int, object]]:
    for number, _, value in _fields(feature):
        if number == kind:  # Feature.bytes_list = 1, int64_list = 3
            yield from ((w, v) for n, w, v in _fields(value) if n == 1)


def bytes_list(feature: memoryview) -> list[bytes]:
    return [bytes(v) for _, v in _list(feature, 1)]


def int64_list(feature: memoryview) -> list[int]:
    out: list[int] = []
    for wire, value in _list(feature, 3):
        if wire == 0:
            out.append(value)
        else:  # packed
            pos, packed = 0, value
            while pos < len(packed):
                v, pos = _varint(packed, pos)
                out.append(v)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]
