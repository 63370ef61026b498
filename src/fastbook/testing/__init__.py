"""Testing helpers: a loopback exchange simulator and exact book comparisons.

``ExchangeSimulator`` needs the ``[live]`` extra (websockets); importing this
package does not.
"""

from __future__ import annotations

from fastbook.testing._compare import book_equals_truth, levels_of
from fastbook.testing._sim import VENUES, ExchangeSimulator, Fault

__all__ = ["VENUES", "ExchangeSimulator", "Fault", "book_equals_truth", "levels_of"]
