"""Fail when a wheel ships an ELF shared object with a symbol table or debug sections.

Usage: python check_stripped.py WHEEL...  (the wheels workflow runs it on the Linux
wheels; setup.py links release builds with -s). Standard library only: it reads each
.so's section headers itself.
"""

from __future__ import annotations

import struct
import sys
import zipfile


def unstripped_sections(data: bytes) -> list[str]:
    """Names of the sections of ELF ``data`` that a stripped object does not have."""
    if data[:4] != b"\x7fELF":
        return []
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
        fmt, name_at, offset_at = end + "IIQQQQ", 0, 4
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)
        fmt, name_at, offset_at = end + "IIIIII", 0, 4

    def header(i: int) -> tuple[int, ...]:
        return struct.unpack_from(fmt, data, shoff + i * shentsize)

    strtab_offset = header(shstrndx)[offset_at]
    names = []
    for i in range(shnum):
        start = strtab_offset + header(i)[name_at]
        names.append(data[start:data.index(b"\0", start)].decode("ascii", "replace"))
    return [n for n in names if n == ".symtab" or n.startswith((".debug", ".zdebug"))]


def check(paths: list[str]) -> list[str]:
    problems = []
    for path in paths:
        with zipfile.ZipFile(path) as wheel:
            for member in wheel.namelist():
                if member.endswith(".so") or ".so." in member:
                    extra = unstripped_sections(wheel.read(member))
                    if extra:
                        problems.append(f"{path}: {member} is not stripped "
                                        f"({', '.join(extra)})")
    return problems


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: check_stripped.py WHEEL...", file=sys.stderr)
        return 2
    problems = check(argv)
    for line in problems:
        print(f"::error::{line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
