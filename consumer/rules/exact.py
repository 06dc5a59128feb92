"""Exact decimal arithmetic for the rules.

Event times keep every digit of their fraction, so `t - window` must not round: in this context
the precision and exponent range are the largest the decimal module allows, and only additions,
subtractions and multiplications run in it, so every result is exact (libmpdec sizes a result by
its digits, not by the context's precision, so this costs nothing extra for ordinary numbers).
"""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context

EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
