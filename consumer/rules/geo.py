"""Rules about places: cross_border and impossible_travel.

Distances are great-circle (haversine) on a sphere of radius 6371 km; distances and speeds are
the only floating-point arithmetic in the rules. The time between the two transactions is taken
exactly (decimal) and only then converted.
"""

from __future__ import annotations

import math
from decimal import Decimal

from consumer.records import Transaction
from consumer.rules.config import RulesConfig
from consumer.rules.exact import EXACT
from consumer.rules.history import HistoryEntry

EARTH_RADIUS_KM = 6371.0
# The longest great-circle distance: half the circumference.
MAX_DISTANCE_KM = math.pi * EARTH_RADIUS_KM

_radians = math.radians
_sin = math.sin
_cos = math.cos
_asin = math.asin
_sqrt = math.sqrt


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    phi1 = _radians(lat1)
    phi2 = _radians(lat2)
    half_dphi = (phi2 - phi1) * 0.5
    half_dlambda = _radians(lon2 - lon1) * 0.5
    s1 = _sin(half_dphi)
    s2 = _sin(half_dlambda)
    a = s1 * s1 + _cos(phi1) * _cos(phi2) * s2 * s2
    return 2.0 * EARTH_RADIUS_KM * _asin(min(1.0, _sqrt(a)))


def travel_reach_s(config: RulesConfig) -> float:
    """Seconds beyond which no two points can imply a speed above the maximum.

    Even the antipode (pi * 6371 km) is reached at exactly max_speed_kmh after this long, and the
    rule needs a speed strictly above it, so an earlier fix older than this never fires.
    """
    return MAX_DISTANCE_KM / config.travel_max_speed_kmh * 3600.0


def cross_border(txn: Transaction) -> str | None:
    """Both countries present and different (the record upper-cases them)."""
    origin = txn.origin_country
    destination = txn.destination_country
    if origin is not None and destination is not None and origin != destination:
        return f"origin {origin}, destination {destination}"
    return None


def impossible_travel(
    txn: Transaction, previous: HistoryEntry | None, config: RulesConfig
) -> str | None:
    """Compare with `previous`: the located history entry with the latest strictly earlier
    event time (ties: latest in the stream), chosen by consumer.rules.scan.

    Fires when the distance is >= min_distance_km and the implied speed is > max_speed_kmh.
    """
    lat = txn.latitude
    lon = txn.longitude
    if previous is None or lat is None or lon is None:
        return None
    plat = previous.latitude
    plon = previous.longitude
    if plat is None or plon is None:
        return None
    distance = haversine_km(plat, plon, lat, lon)
    if distance < config.travel_min_distance_km:
        return None
    seconds: Decimal = EXACT.subtract(txn.event_time, previous.event_time)
    hours = float(seconds) / 3600.0
    # A strictly earlier time, so hours > 0 unless the gap is too small for a float: then the
    # speed is as good as infinite.
    speed = distance / hours if hours > 0.0 else math.inf
    if speed > config.travel_max_speed_kmh:
        shown = f"{speed:.0f}" if speed < 1e9 else f"{speed:.3g}"
        return (
            f"{distance:.1f} km from the previous located transaction {float(seconds):g} s "
            f"earlier: {shown} km/h > {config.travel_max_speed_kmh:g}"
        )
    return None
