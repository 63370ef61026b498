"""Build the C-API consumer against an installed fastbook (run by tests/test_capi.py).

``python setup.py build_ext --inplace`` with ``FASTBOOK_INCLUDE`` naming the directory
that contains the ``fastbook`` package (site-packages, or src/ for a source tree);
its ``fastbook/*.pxd`` are what the consumer cimports.
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

NAME = "fastbook_capi_consumer"

setup(
    name=NAME,
    ext_modules=cythonize(
        [Extension(NAME, [NAME + ".pyx"], include_dirs=[numpy.get_include()])],
        include_path=[os.environ["FASTBOOK_INCLUDE"]],
        compiler_directives={"language_level": 3},
    ),
)
