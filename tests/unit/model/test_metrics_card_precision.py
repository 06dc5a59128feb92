"""Card Precision@k (consumer.model.metrics) on tiny days computed by hand."""

from __future__ import annotations

import hashlib

import pytest

from consumer.model.metrics import (
    CardDay,
    card_precision_at_k,
    card_precision_per_day,
    card_ranking,
)


def _day(txns: list[tuple[str, float, bool]], known: set[str] | None = None) -> CardDay:
    return CardDay(
        cards=[c for c, _, _ in txns],
        scores=[s for _, s, _ in txns],
        frauds=[f for _, _, f in txns],
        known=frozenset(known or ()),
    )


def test_one_day_cards_ranked_by_their_highest_score() -> None:
    # a: max 0.9 (fraud on its low-scored transaction: still a card with a fraud that day)
    # b: 0.8, no fraud; c: 0.7 fraud; d: 0.1 fraud (outside the top 2 and 3)
    day = _day(
        [
            ("a", 0.9, False),
            ("a", 0.2, True),
            ("b", 0.8, False),
            ("c", 0.7, True),
            ("d", 0.1, True),
            ("b", 0.3, False),
        ]
    )
    assert card_ranking(day.cards, day.scores) == [("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.1)]
    assert card_precision_per_day([day], 1) == [1.0]
    assert card_precision_per_day([day], 2) == [0.5]
    assert card_precision_per_day([day], 3) == [pytest.approx(2 / 3)]
    assert card_precision_per_day([day], 4) == [0.75]


def test_fewer_cards_than_k_divides_by_k_and_an_empty_day_counts_zero() -> None:
    day = _day([("a", 0.5, True), ("b", 0.4, True)])
    assert card_precision_per_day([day], 4) == [0.5]
    assert card_precision_per_day([_day([]), day], 4) == [0.0, 0.5]
    assert card_precision_at_k([_day([]), day], 4) == 0.25
    assert card_precision_at_k([], 4) != card_precision_at_k([], 4)  # NaN


def test_ties_are_broken_by_the_hash_of_the_card_whatever_the_input_order() -> None:
    cards = ["x1", "x2", "x3", "x4"]

    def key(card: str) -> bytes:
        return hashlib.blake2b(card.encode(), digest_size=8).digest()

    expected = sorted(cards, key=key)
    forward = card_ranking(cards, [1.0] * 4)
    backward = card_ranking(list(reversed(cards)), [1.0] * 4)
    assert [c for c, _ in forward] == [c for c, _ in backward] == expected
    # Only the first card in hash order is a fraud: at k=1 it is taken, at k=1 with the
    # second one as the fraud it is not.
    first, second = expected[0], expected[1]
    assert card_precision_per_day([_day([(c, 1.0, c == first) for c in cards])], 1) == [1.0]
    assert card_precision_per_day([_day([(c, 1.0, c == second) for c in cards])], 1) == [0.0]
    # A higher score still beats the tie.
    assert card_precision_per_day(
        [_day([*((c, 1.0, False) for c in cards), ("z", 2.0, True)])], 1
    ) == [1.0]


def test_known_compromised_cards_are_dropped_from_their_day() -> None:
    day = _day([("a", 0.9, True), ("b", 0.8, True), ("c", 0.1, False)], known={"a"})
    # Without a: b (fraud), c: top 1 = b.
    assert card_precision_per_day([day], 1) == [1.0]
    assert card_precision_per_day([day], 2) == [0.5]
    known_all = _day([("a", 0.9, True)], known={"a"})
    assert card_precision_per_day([known_all], 1) == [0.0]


def test_detected_cards_leave_the_later_days_but_missed_ones_stay() -> None:
    day1 = _day([("a", 0.9, True), ("b", 0.8, False), ("c", 0.1, True)])
    # Day 2: a (detected on day 1) would top the ranking again; c was missed on day 1 (not in
    # the top 2) and stays; b was in the top 2 without a fraud and stays.
    day2 = _day([("a", 0.95, True), ("b", 0.5, False), ("c", 0.6, True), ("d", 0.2, False)])
    assert card_precision_per_day([day1, day2], 2) == [0.5, 0.5]  # day 2 top 2: c, b
    assert card_precision_at_k([day1, day2], 2) == 0.5
    # Day 2 alone (a not detected before): top 2 = a, c.
    assert card_precision_per_day([day2], 2) == [1.0]
    # A card detected on day 1 and known on day 2 is dropped once, counted nowhere twice.
    day2_known = _day([("a", 0.95, True), ("c", 0.6, True)], known={"a"})
    assert card_precision_per_day([day1, day2_known], 1) == [1.0, 1.0]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="k must be"):
        card_precision_at_k([_day([("a", 1.0, True)])], 0)
    with pytest.raises(ValueError, match="length"):
        card_precision_at_k([CardDay(["a"], [1.0, 2.0], [True])], 1)
