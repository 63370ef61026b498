"""NASDAQ ITCH 5.0 message definitions: the one copy the twin parser and the synthetic writer read.

``_pyitch50`` parses with these layouts (and checks them against the lengths),
``fastbook.synth`` writes with them, ``itch50`` frames by the lengths. The
framing and the statuses ITCH 5.0 shares with OSE ITCH are in ``_itchwire``.
"""

from __future__ import annotations

__all__ = ["BODIES", "HEADER", "MESSAGE_LENGTHS"]

#: Message length in bytes, type byte included, length prefix excluded, for every type.
MESSAGE_LENGTHS: dict[str, int] = {
    "S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35, "h": 21,
    "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44, "Q": 40, "B": 19,
    "I": 50, "N": 20, "O": 48,
}
#: The 11-byte header in struct notation: type(1) locate(2) tracking(2) timestamp(6), the
#: timestamp as a 2-byte high and a 4-byte low part (struct has no 48-bit integer).
HEADER = ">cHHHI"
#: The body after the header of each type, in struct notation ("s"/"c" fields are alpha).
BODIES: dict[str, str] = {
    "S": "c", "R": "8sccIcc2scccccIc", "H": "8scc4s", "Y": "8sc", "L": "4s8sccc", "V": "QQQ",
    "W": "c", "K": "8sIcI", "J": "8sIIII", "h": "8scc", "A": "QcI8sI", "F": "QcI8sI4s", "E": "QIQ",
    "C": "QIQcI", "X": "QI", "D": "Q", "U": "QQII", "P": "QcI8sIQ", "Q": "Q8sIQc", "B": "Q",
    "I": "QQc8sIIIcc", "N": "8sc", "O": "8scIIIQII",
}
