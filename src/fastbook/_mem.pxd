# cython: language_level=3
"""Memory helpers shared by the compiled modules (private: not part of the C API)."""

from libc.stdlib cimport realloc


cdef inline bint grow_to(void **array, Py_ssize_t count, size_t itemsize) noexcept nogil:
    """Reallocate ``*array`` to ``count`` items of ``itemsize`` bytes.

    False when out of memory, with ``*array`` untouched and still valid. Owners of
    parallel arrays raise their recorded capacity only once every array has grown:
    an array that grew before another failed keeps its contents and is merely larger.
    """
    cdef void *p = realloc(array[0], <size_t>count * itemsize)
    if p == NULL:
        return False
    array[0] = p
    return True
