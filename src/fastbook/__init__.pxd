# cython: language_level=3
# ``cimport fastbook`` gives the public C API of the core (see _core.pxd): the book
# struct and its nogil functions, the status codes, the ABI version to compare with
# fastbook._core.ABI_VERSION, and the checks every compiled caller that takes
# ``&book._book`` from Python must make first (book_readable / book_writable).
# The L3 book and BookSet are ``from fastbook._l3 cimport ...`` (see _l3.pxd).
from fastbook._core cimport (
    FB_ABI_VERSION, FB_ASK, FB_BID, FB_EDECIMALS, FB_ENOMEM, FB_EPARSE_EMPTY,
    FB_EPARSE_OVERFLOW, FB_EPARSE_PRECISION, FB_EPARSE_SYNTAX, FB_EPRICE, FB_EQTY, FB_ESIDE,
    FB_FORMAT_BUFSIZE, FB_OK, FB_TOP_CHANGED, Book, book_readable, book_writable, fb_book,
    fb_book_apply, fb_book_best, fb_book_clear, fb_book_copy, fb_book_depth, fb_book_free,
    fb_book_init, fb_book_qty_at, fb_book_reserve, fb_book_set, fb_book_top, fb_book_worst,
    fb_format_decimal, fb_ladder, fb_parse_decimal,
)
