"""A deliberately naive reference for the contract's decisions, written from docs/contract.md alone.

It does not use consumer.rules (only consumer.records, to parse and validate): it keeps the whole
history of every account forever, recomputes every rule from scratch for every record with exact
fractions, and does nothing clever. Slow and obviously right is the point: tests compare the real
rules core and the streaming consumer against it.

Stream order is the order in which positions first appear in the input; a position that appears
again is a replay of that record: judged again, against the history it had the first time, so
nothing later in the stream leaks into it. The 24 h limit on duplicates is not modelled (the
input carries no arrival times; test streams are short).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from consumer.records import InvalidRecord, Transaction, parse_transaction
from consumer.rules.config import RULE_IDS, RulesConfig


@dataclass
class _Judged:
    index: int  # place in stream order
    txn: Transaction


def _km_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine on a sphere of radius 6371 km, written out plainly."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = math.radians(lat2 - lat1)
    dlambda = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    h = min(1.0, max(0.0, h))
    return 2 * 6371 * math.atan2(math.sqrt(h), math.sqrt(1 - h))


def _within(t: Fraction, other: Fraction, window: Fraction) -> bool:
    """docs/contract.md: "within W" means t - W < t' <= t."""
    return t - window < other <= t


def _fired(txn: Transaction, earlier: list[Transaction], config: RulesConfig) -> set[str]:
    """Every rule of docs/contract.md section 2 that fires; `earlier` is the account's history in
    stream order (not including txn)."""
    fired: set[str] = set()
    t = Fraction(txn.event_time)
    everything = [*earlier, txn]  # "the history a transaction sees ... plus the transaction itself"

    # high_amount: amount > 10000
    if Fraction(txn.amount) > Fraction(config.high_amount_threshold):
        fired.add("high_amount")

    # velocity: more than 3 transactions of the account within 60 s
    window = Fraction(config.velocity_window_s)
    in_window = [h for h in everything if _within(t, Fraction(h.event_time), window)]
    if len(in_window) > config.velocity_max_count:
        fired.add("velocity")

    # cross_border: both countries present and destination != origin (case-insensitive)
    origin, destination = txn.origin_country, txn.destination_country
    if origin is not None and destination is not None and origin.upper() != destination.upper():
        fired.add("cross_border")

    # low_balance_high_amount: balance present, amount >= 1000 and amount > 0.9 * balance
    if txn.account_balance is not None:
        amount = Fraction(txn.amount)
        if amount >= Fraction(config.low_balance_min_amount) and amount > Fraction(
            config.low_balance_ratio
        ) * Fraction(txn.account_balance):
            fired.add("low_balance_high_amount")

    # impossible_travel: of the located history with a strictly earlier timestamp, the one with
    # the latest timestamp (ties: the latest in the stream) is >= 100 km away and the implied
    # speed is > 900 km/h. The transaction itself must be located.
    if txn.latitude is not None and txn.longitude is not None:
        candidates = [
            h
            for h in earlier
            if h.latitude is not None and h.longitude is not None and Fraction(h.event_time) < t
        ]
        if candidates:
            latest_time = max(Fraction(h.event_time) for h in candidates)
            point = [h for h in candidates if Fraction(h.event_time) == latest_time][-1]
            assert point.latitude is not None and point.longitude is not None
            km = _km_between(point.latitude, point.longitude, txn.latitude, txn.longitude)
            seconds = t - latest_time
            hours = float(seconds / 3600)
            speed = km / hours if hours > 0 else math.inf
            if km >= config.travel_min_distance_km and speed > config.travel_max_speed_kmh:
                fired.add("impossible_travel")

    # card_testing: at least 5 transactions with amount <= 5.00 within 10 minutes, this one
    # among them
    small = Fraction(config.card_testing_max_amount)
    card_window = Fraction(config.card_testing_window_s)
    if Fraction(txn.amount) <= small:
        small_ones = [
            h
            for h in everything
            if Fraction(h.amount) <= small and _within(t, Fraction(h.event_time), card_window)
        ]
        if len(small_ones) >= config.card_testing_min_count:
            fired.add("card_testing")

    # new_device_high_amount: device_id present, amount >= 1000, no earlier transaction of the
    # account used that device_id, and the account has at least one earlier transaction
    if (
        txn.device_id is not None
        and Fraction(txn.amount) >= Fraction(config.new_device_min_amount)
        and all(h.device_id != txn.device_id for h in earlier)
        and len(earlier) >= 1
    ):
        fired.add("new_device_high_amount")

    return {rule for rule in fired if rule in config.enabled and rule in RULE_IDS}


def reference_decisions(
    records: Sequence[tuple[str, bytes]], config: RulesConfig
) -> list[tuple[str, str, frozenset[str]]]:
    """(position, outcome, fired rule ids) for each (position, raw data) in stream order.

    outcome: "invalid" (docs/contract.md section 1), "duplicate" (a valid record whose
    transaction_id an earlier valid record at another position had: not judged, adds nothing),
    or "judged".
    """
    stream_index: dict[str, int] = {}
    first_position_of_id: dict[str, str] = {}
    judged: dict[str, list[_Judged]] = {}  # account -> its judged transactions
    judged_positions: set[str] = set()
    out: list[tuple[str, str, frozenset[str]]] = []
    for position, data in records:
        index = stream_index.setdefault(position, len(stream_index))
        parsed = parse_transaction(data)
        if isinstance(parsed, InvalidRecord):
            out.append((position, "invalid", frozenset()))
            continue
        first = first_position_of_id.setdefault(parsed.transaction_id, position)
        if first != position:
            out.append((position, "duplicate", frozenset()))
            continue
        account = judged.setdefault(parsed.account_id, [])
        earlier = [j.txn for j in sorted(account, key=lambda j: j.index) if j.index < index]
        out.append((position, "judged", frozenset(_fired(parsed, earlier, config))))
        if position not in judged_positions:
            judged_positions.add(position)
            account.append(_Judged(index, parsed))
    return out
