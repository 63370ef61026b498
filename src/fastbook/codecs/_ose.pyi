"""Type stubs for the compiled OSE ITCH decode kernel (its twin: ``fastbook.codecs._pyose``)."""

import mmap
from typing import Final, SupportsIndex

import numpy as np
import numpy.typing as npt

from fastbook.events import EVENT_DTYPE as EVENT_DTYPE

COMPILED: Final[bool]

_Buffer = bytes | bytearray | memoryview | mmap.mmap | npt.NDArray[np.uint8]

def decode_chunk(
    buf: _Buffer,
    pos: SupportsIndex,
    framing: SupportsIndex,
    events: npt.NDArray[np.void],
    counts: npt.NDArray[np.uint64],
    /,
    *,
    state: npt.NDArray[np.int64] | None = None,
    book_map: npt.NDArray[np.uint64] | None = None,
    directory: npt.NDArray[np.int64] | None = None,
    positions: npt.NDArray[np.uint32] | None = None,
    equilibrium: npt.NDArray[np.int64] | None = None,
    invalid: npt.NDArray[np.uint64] | None = None,
    seq: SupportsIndex = 0,
    final: bool = False,
) -> tuple[int, int, int, int, int]: ...
