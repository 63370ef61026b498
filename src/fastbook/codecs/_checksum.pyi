"""Type stubs for the compiled checksum kernel (its twin: ``fastbook.codecs._pychecksum``)."""

from typing import Any, Final

COMPILED: Final[bool]
MAX_LEVELS: Final[int]

def crc32(data: bytes | bytearray | memoryview) -> int: ...
def kraken_text(
    book: Any, price_digits: int | None = None, qty_digits: int | None = None, levels: int = 10
) -> bytes: ...
def kraken_checksum(
    book: Any, price_digits: int | None = None, qty_digits: int | None = None, levels: int = 10
) -> int: ...
def okx_text(book: Any, levels: int = 25) -> bytes: ...
def okx_checksum(book: Any, levels: int = 25) -> int: ...
def truncate(book: Any, side: int, depth: int) -> list[int]: ...
def parse_levels(
    levels: Any,
    price_decimals: int,
    qty_decimals: int,
    prices: list[int],
    qtys: list[int],
    key: str = "levels",
    kraken_v1: bool = False,
) -> int: ...
def set_levels(book: Any, side: int, prices: list[int], qtys: list[int]) -> None: ...
