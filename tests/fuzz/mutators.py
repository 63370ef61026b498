"""Mutators for hostile input: bytes, text lines, JSON trees and wrong types.

Every mutator takes a ``random.Random`` and a value and returns a new value; none
keeps state, so a seed and an input number reproduce a mutation. They are the
fuzz suite's own (no third-party fuzzer): bit flips, byte sets, truncation,
insertion and deletion, splices of hostile tokens (odd Unicode, huge numbers,
JSON punctuation), structure-aware edits of JSON messages (a node replaced by
another type, a huge number, a lone surrogate, deep nesting) and of CSV cells,
and whole-value type changes.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

#: Byte strings spliced into inputs: JSON punctuation, numbers at and past every
#: integer width, odd UTF-8 (invalid bytes, an encoded surrogate, overlong forms,
#: non-ASCII digits), NUL and a BOM.
NUMBER_TOKENS: tuple[bytes, ...] = (
    b"0", b"-0", b"00", b"1e999", b"-1e-999", b"0.000000000000000000001", b"127", b"128", b"255",
    b"256", b"32767", b"65536", b"2147483647", b"2147483648", b"4294967296",
    b"9223372036854775807", b"9223372036854775808", b"-9223372036854775809",
    b"18446744073709551616", b"9" * 40, b"9" * 5000, b"NaN", b"Infinity",
)
TOKENS: tuple[bytes, ...] = (
    b'"', b"[", b"]", b"{", b"}", b",", b":", b"-", b".", b"e", b"E+", b"\\", b"\\u",
    b"\\ud800", b"null", b"true", b"false", *NUMBER_TOKENS,
    b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe0\x80\xaf",
    b"\xf4\x90\x80\x80", b"\xc2\xb2", b"\xd9\xa1", b"\xef\xbc\x91", b"\x00",
    b"\xef\xbb\xbf", b"\r", b"\n", b"\t", b" ",
)

#: Text values put into JSON strings and CSV cells.
ODD_TEXT: tuple[str, ...] = (
    "", " ", "\ud800", "\udfff", "1\ud800", "\u00b2", "\u0661", "\uff11", "1_000", " 1", "1 ",
    "+1", "-", "1e5", "0x10", "nan", "inf", "\x00", "\ufeff1", "9" * 40, "9" * 5000, "-" + "9" * 40,
    "1." + "0" * 30 + "1", "12345678901234567890", "18446744073709551616", "\u202e", "\n",
)

#: Numbers put into JSON trees.
ODD_NUMBERS: tuple[Any, ...] = (
    0, -1, 1, 2**31, -(2**31) - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64,
    10**40, -(10**40), 1.5, -0.0, 1e308, 5e-324, True, False,
)


_DIGIT = re.compile(rb"[0-9]")


def bytes_mutation(rng: random.Random, data: bytes) -> bytes:
    """One to four random edits of ``data`` (bit flip, byte set, delete, insert, splice, cut)."""
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 4))):
        n = len(buf)
        op = rng.randrange(9)
        if op == 0 and n:                       # bit flip
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:                     # byte set (extremes more often)
            buf[rng.randrange(n)] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op == 2 and n:                     # delete a span
            i = rng.randrange(n)
            del buf[i:i + rng.choice((1, 1, 2, 8, 64))]
        elif op == 3:                           # insert random bytes
            i = rng.randrange(n + 1)
            buf[i:i] = rng.randbytes(rng.choice((1, 2, 4, 16)))
        elif op in (4, 5):                      # splice a hostile token
            i = rng.randrange(n + 1)
            j = i + rng.choice((0, 0, 1, 2, 5))
            buf[i:j] = rng.choice(TOKENS)
        elif op == 6 and n:                     # truncate
            del buf[rng.randrange(n):]
        elif op == 7 and n:                     # duplicate a span
            i = rng.randrange(n)
            buf[i:i] = buf[i:i + rng.choice((1, 4, 32, 256))]
        elif op == 8 and n:                     # replace a run of digits by a hostile number
            digits = [m.start() for m in _DIGIT.finditer(buf)]
            if digits:
                i = rng.choice(digits)
                j = i
                while j < n and 48 <= buf[j] <= 57:
                    j += 1
                buf[i:j] = rng.choice(NUMBER_TOKENS)
    return bytes(buf)


def _paths(node: Any, path: tuple[Any, ...], out: list[tuple[Any, ...]], depth: int) -> None:
    out.append(path)
    if depth > 8:
        return
    if type(node) is dict:
        for k, v in node.items():
            _paths(v, (*path, k), out, depth + 1)
    elif type(node) is list:
        for i, v in enumerate(node[:50]):
            _paths(v, (*path, i), out, depth + 1)


def _deep(rng: random.Random) -> Any:
    depth = rng.choice((64, 500, 1000, 5000, 100_000))
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _odd_value(rng: random.Random, old: Any) -> Any:
    r = rng.randrange(10)
    if r == 0:
        return rng.choice(ODD_NUMBERS)
    if r == 1:
        return rng.choice(ODD_TEXT)
    if r == 2:
        return None
    if r == 3:
        return [] if rng.random() < 0.5 else {}
    if r == 4:
        return [old]
    if r == 5:
        return {"x": old}
    if r == 6:
        return _deep(rng)
    if r == 7 and isinstance(old, str):
        i = rng.randrange(len(old) + 1)
        return old[:i] + rng.choice(ODD_TEXT) + old[i:]
    if r == 8 and isinstance(old, str) and old:
        return str(len(old)) if not old[0].isdigit() else old[::-1]
    if isinstance(old, list) and old:
        return old + old[:1] if rng.random() < 0.5 else old[1:]
    return rng.choice(ODD_TEXT + ODD_NUMBERS)   # type: ignore[operator]


def _dumps(rng: random.Random, obj: Any) -> str | None:
    try:
        return json.dumps(obj, ensure_ascii=rng.random() < 0.5, allow_nan=True,
                          check_circular=False)
    except (RecursionError, ValueError):
        return None


def _mutate_tree(rng: random.Random, obj: Any, depth: int = 0) -> Any:
    """``obj`` (a parsed JSON tree, changed in place where it can be) with one node edited."""
    paths: list[tuple[Any, ...]] = []
    _paths(obj, (), paths, 0)
    path = rng.choice(paths)
    if not path:
        return _odd_value(rng, obj)
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    op = rng.randrange(5)
    if op == 0 and type(parent) is dict:
        del parent[key]
    elif op == 1 and type(parent) is dict:
        parent[rng.choice(("x", "type", "e", "s", "data", "bids", "asks", "\ud800"))] = \
            _odd_value(rng, parent[key])
    elif op == 2 and type(parent) is list:
        parent.insert(key, _odd_value(rng, parent[key]))
    elif op == 3 and type(parent) is list and depth == 0:
        # a sibling that differs a little: messages of several entries, one of them bad
        twin = json.loads(json.dumps(parent[key]))
        parent.insert(key + rng.randrange(2), _mutate_tree(rng, twin, depth + 1))
    else:
        parent[key] = _odd_value(rng, parent[key])
    return obj


def json_mutation(rng: random.Random, message: bytes | str) -> bytes | str | None:
    """A structure-aware edit of a JSON message (None when it does not parse as JSON)."""
    try:
        obj = json.loads(message)
    except (ValueError, RecursionError):
        return None
    text = _dumps(rng, _mutate_tree(rng, obj))
    if text is None:
        return None
    if isinstance(message, str) or "\ud800" in text or "\udfff" in text or rng.random() < 0.2:
        return text
    try:
        return text.encode()
    except UnicodeEncodeError:      # a lone surrogate: only a str can carry it
        return text


def type_mutation(rng: random.Random, message: bytes | str) -> Any:
    """The message as another type: str with lone surrogates, bytearray, memoryview, or not
    text at all."""
    raw = message.encode("utf-8", "surrogatepass") if isinstance(message, str) else message
    r = rng.randrange(8)
    if r == 0:
        return bytearray(raw)
    if r == 1:
        return memoryview(raw)
    if r in (2, 3):
        # bytes that are not UTF-8 become lone surrogates (U+DC80..U+DCFF) in a str
        return bytes_mutation(rng, raw).decode("utf-8", "surrogateescape")
    return rng.choice((None, 0, -1, 2**64, 1.5, [], {}, (), b"", "", object(), [raw], {"a": raw}))


def message_mutation(rng: random.Random, message: bytes | str) -> Any:
    """One mutation of a venue message: JSON-aware most often, else bytes or type."""
    r = rng.random()
    if r < 0.55:
        out = json_mutation(rng, message)
        if out is not None:
            return out
    if r < 0.92:
        raw = message.encode("utf-8", "surrogatepass") if isinstance(message, str) else message
        out_b = bytes_mutation(rng, raw)
        return out_b.decode("utf-8", "surrogateescape") if isinstance(message, str) else out_b
    return type_mutation(rng, message)


def csv_mutation(rng: random.Random, data: bytes, sep: bytes = b",") -> bytes:
    """Edit one line of a text file: a cell replaced by odd text, cells added or removed,
    or a bytes mutation of that line."""
    lines = data.split(b"\n")
    k = rng.randrange(len(lines))
    cells = lines[k].split(sep)
    r = rng.randrange(5)
    if r <= 1:
        i = rng.randrange(len(cells))
        cells[i] = rng.choice(ODD_TEXT).encode("utf-8", "surrogatepass")
    elif r == 2:
        cells.insert(rng.randrange(len(cells) + 1), rng.choice(ODD_TEXT).encode("utf-8",
                                                                              "surrogatepass"))
    elif r == 3 and len(cells) > 1:
        del cells[rng.randrange(len(cells))]
    else:
        lines[k] = bytes_mutation(rng, lines[k])
        return b"\n".join(lines)
    lines[k] = sep.join(cells)
    return b"\n".join(lines)
