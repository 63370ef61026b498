"""Build the fastbook extensions.

Everything about how the Cython core is compiled lives here, in one place:

* ``FASTBOOK_DEBUG=1``      bounds/wraparound checks on, ``-O0 -g``, asserts kept.
* ``FASTBOOK_LINETRACE=1``  Cython line tracing for coverage (``CYTHON_TRACE_NOGIL``).
* ``FASTBOOK_ANNOTATE=1``   write ``*.html`` annotation next to each ``.pyx``.
* ``FASTBOOK_BUILD_ONLY=fastbook.codecs._x,...``  build only the named extensions
  (development: rebuild one kernel without touching the others).
* ``FASTBOOK_STRIP=0``      keep the symbol table and debug info of a release build.
  A release build (neither of the first two) links stripped shared objects: Python's
  own CFLAGS carry ``-g``, which made each ``.so`` 3-5x its code size (the wheels
  ship them as built).

Generated ``.c`` files are build products and are not committed.
"""

import glob
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


DEBUG = _flag("FASTBOOK_DEBUG")
LINETRACE = _flag("FASTBOOK_LINETRACE")
ANNOTATE = _flag("FASTBOOK_ANNOTATE")
STRIP = not (DEBUG or LINETRACE) and os.environ.get("FASTBOOK_STRIP", "1") != "0"

# The one place for compiler directives.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "freethreading_compatible": False,
    "linetrace": LINETRACE,
    "profile": False,
}

MACROS = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]
if LINETRACE:
    MACROS += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]

LINK_ARGS: list[str] = []
if sys.platform == "win32":
    # MSVC writes debug info to a separate .pdb only when asked (/Zi, /DEBUG)
    COMPILE_ARGS = ["/Od", "/Zi"] if DEBUG else ["/O2"]
else:
    COMPILE_ARGS = ["-O0", "-g3", "-UNDEBUG"] if DEBUG else ["-O3"]
    # no fused multiply-adds: the feature kernels must give their twin's floats bit for bit
    COMPILE_ARGS += ["-ffp-contract=off"]
    COMPILE_ARGS += ["-Wno-unreachable-code", "-Wno-unused-function"]
    if STRIP:
        # -s: no symbol table or debug sections (the dynamic symbols, PyInit_*, stay);
        # Apple's ld has no -s: -S drops debug info, -x local symbols
        LINK_ARGS = ["-Wl,-S", "-Wl,-x"] if sys.platform == "darwin" else ["-s"]


def extension(name: str) -> Extension:
    path = "src/" + name.replace(".", "/") + ".pyx"
    return Extension(
        name,
        [path],
        # a module written in pieces includes its src/.../<module>_*.pxi files
        depends=sorted(glob.glob(path[: -len(".pyx")] + "_*.pxi")),
        include_dirs=[numpy.get_include()],
        define_macros=MACROS,
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
    )


EXTENSIONS = [
    extension("fastbook._core"),
    extension("fastbook._l3"),
    extension("fastbook._hist"),
    extension("fastbook._consol"),
    extension("fastbook._board"),
    # Codec kernels: every src/fastbook/codecs/_*.pyx is one extension.
    *(extension("fastbook.codecs." + os.path.basename(p)[: -len(".pyx")])
      for p in sorted(glob.glob("src/fastbook/codecs/_*.pyx"))),
]
_ONLY = [n for n in os.environ.get("FASTBOOK_BUILD_ONLY", "").split(",") if n]
if _ONLY:
    EXTENSIONS = [e for e in EXTENSIONS if e.name in _ONLY]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives=DIRECTIVES,
        annotate=ANNOTATE,
        include_path=["src"],
        force=DEBUG or LINETRACE,
    ),
)
