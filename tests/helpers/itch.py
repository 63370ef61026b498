"""ITCH 5.0 message lengths from the specification (specs/itch.md table 1.2), written out
here independently of fastbook's code so the tests check the code against the spec."""

#: Type byte -> message length, type byte included, length prefix excluded.
LENGTHS = {
    b"S": 12, b"R": 39, b"H": 25, b"Y": 20, b"L": 26, b"V": 35, b"W": 12, b"K": 28,
    b"J": 35, b"h": 21, b"A": 36, b"F": 40, b"E": 31, b"C": 36, b"X": 23, b"D": 19,
    b"U": 35, b"P": 44, b"Q": 40, b"B": 19, b"I": 50, b"N": 20, b"O": 48,
}
