"""What the compiled ``Consolidated`` and its twin share: venue specs, the exact common scale,
default fees, the merged depth and the arbitrage arithmetic.

Both implementations take their plan from :func:`plan` (so they refuse the same inputs with
the same messages) and finish an arbitrage walk with :func:`opportunity` (exact Python
integers); only the per-update hot path and the book walk differ, and the tests compare them.
See ``docs/consolidated.md`` for the units and guarantees.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from fastbook._checks import MAX_DECIMALS, is_int
from fastbook.codecs._l2feed import Instrument
from fastbook.codecs.instruments import parse_symbol

#: Why a venue is or is not in the view (``venues_in()``), by reason code.
REASONS = ("in", "no data", "not live", "crossed", "overflow", "stale")
IN, NO_DATA, NOT_LIVE, CROSSED, OVERFLOW, STALE = range(6)

#: Fee rates are exact integers in units of 10**-FEE_DECIMALS (1 = 0.0001 bps).
FEE_DECIMALS = 8
FEE_ONE = 10**FEE_DECIMALS
#: A converted quantity above this counts as overflow: 64 of them still sum inside int64.
QTY_LIMIT = (2**63 - 1) // 64
INT64_MAX = 2**63 - 1
MAX_VENUES = 64
#: Default staleness threshold: 5 s without an update.
DEFAULT_STALE_NS = 5_000_000_000

#: Published regular-tier (lowest volume) taker fees, as rates, by (venue, kind or "*").
#: Looked up 2026-12 from the venues' fee pages; see docs/consolidated.md. User data:
#: pass ``taker_fee`` per venue for your own tier.
DEFAULT_TAKER_FEES: dict[tuple[str, str], str] = {
    ("binance-spot", "*"): "0.001",
    ("binance-us", "*"): "0.001",
    ("binance-usdm", "*"): "0.0005",
    ("binance-coinm", "*"): "0.0005",
    ("coinbase-advanced", "*"): "0.012",
    ("coinbase-exchange", "*"): "0.012",
    ("kraken-v1", "*"): "0.004",
    ("kraken-v2", "*"): "0.004",
    ("okx", "spot"): "0.001",
    ("okx", "*"): "0.0005",
    ("bybit", "spot"): "0.001",
    ("bybit", "*"): "0.00055",
}

#: One row of ``take_events()``: a consolidated-BBO change. Every field is 8 bytes, so the
#: compiled module writes the same layout as a C struct. An empty side has price 0, qty 0,
#: mask 0 and age -1 (``flags`` bit 1: has bid, bit 2: has ask).
CBBO_DTYPE = np.dtype([
    ("ts", "<i8"), ("venue", "<i8"), ("flags", "<i8"),
    ("bid", "<i8"), ("bid_qty", "<i8"), ("bid_mask", "<u8"),
    ("ask", "<i8"), ("ask_qty", "<i8"), ("ask_mask", "<u8"),
    ("bid_age", "<i8"), ("ask_age", "<i8"), ("in_mask", "<u8"),
])
HAS_BID, HAS_ASK = 1, 2


@dataclass(frozen=True)
class Venue:
    """One venue of a consolidated view.

    ``book`` is a ``fastbook.Book`` (read through the C API by the compiled view) or any
    reader with ``bbo()`` and ``top(n)`` like it (an L3 ``OrderBook``, the twin ``Book``).
    ``instrument`` gives the scales and contract size. ``stale_ns``: quotes older than this
    (since the venue's last ``update``) are excluded. ``taker_fee``: a rate as decimal text
    (``"0.001"`` = 10 bps), or None for the default of :data:`DEFAULT_TAKER_FEES`.
    """

    name: str
    book: Any
    instrument: Instrument
    stale_ns: int = DEFAULT_STALE_NS
    taker_fee: str | Decimal | None = None


class VenuePlan(NamedTuple):
    """One venue's exact conversion onto the common scale."""

    name: str
    book: Any
    price_mult: int         # common price = venue price * price_mult
    qty_mult: int           # common qty = venue qty * qty_mult (contract size included)
    fee: int                # taker fee rate in units of 10**-FEE_DECIMALS
    stale_ns: int


class Plan(NamedTuple):
    """The common scale and every venue's conversion (what both implementations run on)."""

    symbol: str
    base: str
    quote: str
    price_decimals: int
    qty_decimals: int
    venues: tuple[VenuePlan, ...]
    fixed_cost: int         # per opportunity, at profit_decimals
    min_profit_bps: Fraction
    max_age_ns: int         # -1: no limit

    @property
    def profit_decimals(self) -> int:
        return self.price_decimals + self.qty_decimals + FEE_DECIMALS


class Opportunity(NamedTuple):
    """Sell on ``sell_venue`` (hitting its bids), buy on ``buy_venue`` (lifting its asks).

    ``qty`` at the common qty scale; ``sell_notional`` / ``buy_notional`` (before fees) at
    ``price_decimals + qty_decimals``; ``profit`` after both taker fees and the fixed cost, an
    exact integer in quote currency at ``profit_decimals`` (= price + qty + 8 decimals);
    ``profit_bps`` = profit / buy notional in basis points (a float, for display and
    ranking); ``sell_limit`` / ``buy_limit`` the worst prices the walk reached; ``levels``
    (bid levels, ask levels) consumed; ``sell_age_ns`` / ``buy_age_ns`` the quotes' ages.
    """

    sell_venue: str
    buy_venue: str
    qty: int
    sell_notional: int
    buy_notional: int
    profit: int
    profit_decimals: int
    profit_bps: float
    sell_limit: int
    buy_limit: int
    levels: tuple[int, int]
    sell_age_ns: int
    buy_age_ns: int

    def profit_decimal(self) -> Decimal:
        """``profit`` as an exact ``Decimal`` in quote currency."""
        return Decimal(self.profit).scaleb(-self.profit_decimals)


class Depth(NamedTuple):
    """Merged top levels: prices and total quantities per side, best first, and per venue
    quantities (``(levels, venues)``, column order = the view's venues)."""

    bid_prices: np.ndarray
    bid_qtys: np.ndarray
    bid_venue_qtys: np.ndarray
    ask_prices: np.ndarray
    ask_qtys: np.ndarray
    ask_venue_qtys: np.ndarray


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, (bool, float)):
        raise ValueError(f"{what} must be decimal text or a Decimal (not {type(value).__name__})")
    try:
        d = Decimal(value) if isinstance(value, (str, int, Decimal)) else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite():
        raise ValueError(f"{what} must be a decimal number, got {value!r}")
    return d


def as_int(value: Any, what: str, error: type[Exception]) -> int:
    """An int or numpy integer as an int (never a bool or a float)."""
    if isinstance(value, (bool, np.bool_, float, np.floating)):
        raise error(f"{what} must be an int, got {type(value).__name__}")
    try:
        return operator.index(value)
    except TypeError:
        raise error(f"{what} must be an int, got {type(value).__name__}") from None


def _as_venue(entry: Any, i: int) -> Venue:
    if isinstance(entry, Venue):
        return entry
    if isinstance(entry, Mapping):
        return Venue(**entry)
    if isinstance(entry, (tuple, list)) and 3 <= len(entry) <= 5:
        return Venue(*entry)
    raise TypeError(f"venue {i}: expected a Venue, a mapping or a (name, book, instrument"
                    f"[, stale_ns[, taker_fee]]) tuple, got {type(entry).__name__}")


def default_fee(instrument: Instrument) -> str | None:
    """The default taker fee rate (text) of the instrument's venue and kind, or None."""
    kind = "spot" if instrument.kind == "spot" else "derivative"
    for key in ((instrument.venue, kind), (instrument.venue, "*")):
        if key in DEFAULT_TAKER_FEES:
            return DEFAULT_TAKER_FEES[key]
    return None


def _fee_units(v: Venue) -> int:
    fee = v.taker_fee if v.taker_fee is not None else default_fee(v.instrument)
    if fee is None:
        raise ValueError(f"venue {v.name!r}: no default taker fee for venue id "
                         f"{v.instrument.venue!r}; pass taker_fee (a rate such as '0.001')")
    units = _decimal(fee, f"venue {v.name!r} taker_fee") * FEE_ONE
    if units != units.to_integral_value() or not 0 <= units < FEE_ONE:
        raise ValueError(f"venue {v.name!r}: taker_fee {fee!r} must be a rate in [0, 1) with "
                         f"at most {FEE_DECIMALS} decimals")
    return int(units)


def _contract(v: Venue, base: str, quote: str) -> tuple[int, int]:
    """(units, decimals) of the base quantity of one unit of the venue's quantity."""
    inst = v.instrument
    if inst.contract_size is None:
        return 1, 0
    if inst.contract_size == "":
        raise ValueError(f"venue {v.name!r}: contract size of {inst.symbol!r} is unknown "
                         "(load the venue's instrument document)")
    unit = inst.contract_unit
    if unit == quote:
        raise ValueError(f"venue {v.name!r}: {inst.symbol!r} is an inverse contract (worth "
                         f"{inst.contract_size} {quote}): its base quantity depends on the "
                         "price and cannot be converted exactly")
    if unit not in ("", base):
        raise ValueError(f"venue {v.name!r}: contract unit {unit!r} is neither {base!r} nor "
                         f"{quote!r}")
    size = _decimal(inst.contract_size, f"venue {v.name!r} contract_size")
    if size <= 0:
        raise ValueError(f"venue {v.name!r}: contract size {inst.contract_size!r} is not positive")
    _, digits, exp = size.normalize().as_tuple()
    assert isinstance(exp, int)
    units = int("".join(map(str, digits)))
    return (units * 10**exp, 0) if exp >= 0 else (units, -exp)


def plan(symbol: str, venues: Sequence[Any], *, fixed_cost: Any = "0",
         min_profit_bps: Any = 0, max_age_ns: int | None = None) -> Plan:
    """Check the venues and choose the common scale exactly; ValueError naming the venue."""
    parts = parse_symbol(symbol)
    specs = [_as_venue(e, i) for i, e in enumerate(venues)]
    if not 1 <= len(specs) <= MAX_VENUES:
        raise ValueError(f"a consolidated view takes 1 to {MAX_VENUES} venues, got {len(specs)}")
    names = [v.name for v in specs]
    for v in specs:
        if not isinstance(v.name, str) or not v.name:
            raise ValueError(f"venue names must be non-empty strings, got {v.name!r}")
        if names.count(v.name) > 1:
            raise ValueError(f"venue name {v.name!r} appears more than once")
        if not isinstance(v.instrument, Instrument):
            raise TypeError(f"venue {v.name!r}: instrument must be a fastbook Instrument")
        try:
            p = parse_symbol(v.instrument.symbol)
        except ValueError as exc:
            raise ValueError(f"venue {v.name!r}: {exc}") from None
        if (p.base, p.quote) != (parts.base, parts.quote):
            raise ValueError(f"venue {v.name!r}: instrument {v.instrument.symbol!r} is "
                             f"{p.base}/{p.quote}, not {parts.base}/{parts.quote}")
        if not is_int(v.stale_ns, 0, INT64_MAX):
            raise ValueError(f"venue {v.name!r}: stale_ns must be a non-negative int")
        for attr in ("bbo", "top"):
            if not callable(getattr(v.book, attr, None)):
                raise TypeError(f"venue {v.name!r}: the book has no {attr}() method")
    contracts = [_contract(v, parts.base, parts.quote) for v in specs]
    pdec = max(v.instrument.price_decimals for v in specs)
    qdec = max(v.instrument.qty_decimals + c[1] for v, c in zip(specs, contracts, strict=True))
    if qdec > MAX_DECIMALS:
        raise ValueError(f"the common quantity scale would need {qdec} decimals (more than "
                         f"{MAX_DECIMALS}): venue contract sizes are too fine to combine")
    out = []
    for v, (units, cdec) in zip(specs, contracts, strict=True):
        qmult = units * 10**(qdec - v.instrument.qty_decimals - cdec)
        if qmult > QTY_LIMIT:
            raise ValueError(f"venue {v.name!r}: quantity multiplier {qmult} is beyond int64")
        out.append(VenuePlan(v.name, v.book, 10**(pdec - v.instrument.price_decimals), qmult,
                             _fee_units(v), int(v.stale_ns)))
    cost = _decimal(fixed_cost, "fixed_cost").scaleb(pdec + qdec + FEE_DECIMALS)
    if cost != cost.to_integral_value() or cost < 0:
        raise ValueError(f"fixed_cost {fixed_cost!r}: a non-negative amount of {parts.quote} "
                         f"with at most {pdec + qdec + FEE_DECIMALS} decimals")
    if isinstance(min_profit_bps, float):
        bps = Fraction(Decimal(repr(min_profit_bps)))
    else:
        bps = Fraction(_decimal(min_profit_bps, "min_profit_bps"))
    if max_age_ns is not None and not is_int(max_age_ns, 0, INT64_MAX):
        raise ValueError("max_age_ns must be None or a non-negative int")
    return Plan(symbol, parts.base, parts.quote, pdec, qdec, tuple(out), int(cost), bps,
                -1 if max_age_ns is None else int(max_age_ns))


def rebind(p: Plan, i: int, book: Any) -> Plan:
    """The plan with venue ``i`` reading ``book`` instead (a live feed that rebuilt the
    venue's book on a new connection). The new book must have the old one's scales, since
    the venue's conversion onto the common scale was chosen for them."""
    if not 0 <= i < len(p.venues):
        raise IndexError(f"venue index {i!r} out of range 0..{len(p.venues) - 1}")
    v = p.venues[i]
    for attr in ("bbo", "top"):
        if not callable(getattr(book, attr, None)):
            raise TypeError(f"venue {v.name!r}: the book has no {attr}() method")
    old = (getattr(v.book, "price_decimals", None), getattr(v.book, "qty_decimals", None))
    new = (getattr(book, "price_decimals", None), getattr(book, "qty_decimals", None))
    if old != new:
        raise ValueError(f"venue {v.name!r}: the new book has {new[0]}/{new[1]} price/qty "
                         f"decimals, the view was planned for {old[0]}/{old[1]}")
    venues = list(p.venues)
    venues[i] = v._replace(book=book)
    return p._replace(venues=tuple(venues))


def opportunity(p: Plan, sell: int, buy: int, chunks: Sequence[tuple[int, int, int]],
                levels: tuple[int, int], sell_age: int, buy_age: int) -> Opportunity | None:
    """Total a walk's chunks ``(bid price, ask price, qty)`` exactly; None when the result
    fails the plan's filters (profit after fixed cost not positive, below min_profit_bps)."""
    qty = sell_n = buy_n = 0
    for pb, pa, q in chunks:
        qty += q
        sell_n += pb * q
        buy_n += pa * q
    fs, fb = p.venues[sell].fee, p.venues[buy].fee
    profit = sell_n * (FEE_ONE - fs) - buy_n * (FEE_ONE + fb) - p.fixed_cost
    if qty <= 0 or profit <= 0 or buy_n <= 0:
        return None
    # profit / (buy_n * FEE_ONE) >= min_bps / 10**4, exactly, in integers
    bps = p.min_profit_bps
    if bps.numerator > 0 and profit * 10**4 * bps.denominator < bps.numerator * buy_n * FEE_ONE:
        return None
    return Opportunity(p.venues[sell].name, p.venues[buy].name, qty, sell_n, buy_n, profit,
                       p.profit_decimals, profit * 1e4 / (buy_n * FEE_ONE), chunks[-1][0],
                       chunks[-1][1], levels, sell_age, buy_age)


def rank(found: list[Opportunity]) -> tuple[Opportunity, ...]:
    """Best first: by profit, then bps, then venue names (a stable, total order)."""
    found.sort(key=lambda o: (-o.profit, -o.profit_bps, o.sell_venue, o.buy_venue))
    return tuple(found)


def venue_levels(p: Plan, i: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray]:
    """Venue ``i``'s best ``n`` levels per side at the common scale (object-free int64 arrays,
    trimmed to the levels it has); OverflowError naming the venue when a level does not fit."""
    v = p.venues[i]
    depth = getattr(v.book, "depth", None)
    if callable(depth):
        # a book holds fewer levels than a large n asks for: never allocate for levels
        # that cannot exist (depth(2**31) would ask numpy for 64 GiB)
        n = min(n, max(depth(1), depth(2)))
    top = np.asarray(v.book.top(n), dtype=np.int64)
    out = []
    for row in (0, 2):
        qtys = top[row + 1]
        k = int(np.count_nonzero(qtys))
        prices, qtys = top[row][:k], qtys[:k]
        if k and (np.abs(prices).max() > INT64_MAX // v.price_mult
                  or qtys.max() > QTY_LIMIT // v.qty_mult):
            raise OverflowError(f"venue {v.name!r}: a level does not fit int64 at the common "
                                "scale")
        out += [prices * v.price_mult, qtys * v.qty_mult]
    return out[0], out[1], out[2], out[3]


def merge_depth(p: Plan, in_venues: Sequence[int], n: int) -> Depth:
    """Top ``n`` merged levels of the venues in ``in_venues`` (read from their books now)."""
    nv = len(p.venues)
    sides: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    per = [venue_levels(p, i, n) for i in in_venues]
    for side in (0, 1):
        book: dict[int, np.ndarray] = {}
        for i, lv in zip(in_venues, per, strict=True):
            for price, qty in zip(lv[2 * side].tolist(), lv[2 * side + 1].tolist(), strict=True):
                book.setdefault(price, np.zeros(nv, dtype=np.int64))[i] += qty
        prices = sorted(book, reverse=(side == 0))[:n]
        vq = np.array([book[x] for x in prices], dtype=np.int64).reshape(len(prices), nv)
        sides.append((np.array(prices, dtype=np.int64), vq.sum(axis=1, dtype=np.int64), vq))
    return Depth(*sides[0], *sides[1])


def names_of(p: Plan, mask: int) -> tuple[str, ...]:
    """The venue names of a bit mask, in venue order."""
    return tuple(v.name for i, v in enumerate(p.venues) if mask >> i & 1)


def metadata(p: Plan) -> dict[str, Any]:
    """What a writer stores beside the event columns: symbol, scales, venues and their
    conversions, fees (as rate text) and thresholds."""
    return {
        "symbol": p.symbol, "price_decimals": p.price_decimals,
        "qty_decimals": p.qty_decimals, "profit_decimals": p.profit_decimals,
        "venues": [{"name": v.name, "price_mult": v.price_mult, "qty_mult": v.qty_mult,
                    "taker_fee": format(Decimal(v.fee).scaleb(-FEE_DECIMALS), "f"),
                    "stale_ns": v.stale_ns} for v in p.venues],
        "fixed_cost": format(Decimal(p.fixed_cost).scaleb(-p.profit_decimals), "f"),
        "min_profit_bps": str(p.min_profit_bps), "max_age_ns": p.max_age_ns,
        "events_dtype": [[name, CBBO_DTYPE[name].str] for name in CBBO_DTYPE.names or ()],
    }
