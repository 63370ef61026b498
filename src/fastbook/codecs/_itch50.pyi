"""Type stubs for the compiled ITCH 5.0 decode kernel (its twin: ``fastbook.codecs._pyitch50``)."""

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
    locate_map: npt.NDArray[np.int32] | None = None,
    directory: npt.NDArray[np.int64] | None = None,
    seq: SupportsIndex = 0,
    final: bool = False,
    mold_next: SupportsIndex = -1,
) -> tuple[int, int, int, int, int]: ...
