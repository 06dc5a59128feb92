"""A small output tree for the docs' SQL and browser tests: two days of judged transactions
(live and shadow rules, model scores, several categories and hours), dead letters and JSON Lines
labels, written with the workers' own line writers (tests/unit/report/tree.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.unit.report.tree import Tree, arrival_ms, write_labels

DAYS = ("2026-12-06", "2026-12-07")


def write_sample(root: Path) -> list[str]:
    """Writes the tree under `root`; the transaction ids."""
    tree = Tree()
    ids = []
    for n in range(24):
        day = DAYS[0] if n < 14 else DAYS[1]
        rules: tuple[tuple[str, str], ...] = ()
        if n % 3 == 0:
            rules = (("high_amount", "high"),)
        elif n % 4 == 1:
            rules = (("velocity", "medium"), ("geo_mismatch", "low"))
        ids.append(
            tree.judge(
                n,
                arrival_ms(day, n % 24, n),
                amount=f"{100 + 7 * n}.50",
                rules=rules,
                shadow=(("night_owl", "low"),) if n % 2 else (),
                score=float((n * 37) % 100),
                model_version="m-1",
                merchant_category=("electronics", "grocery", "travel")[n % 3],
                channel=("online", "card_present")[n % 2],
                origin_country="fr",
                destination_country=("US", "FR")[n % 2],
            )
        )
    tree.dead(arrival_ms(DAYS[0], 3), "not valid JSON: Expecting value")
    tree.dead(arrival_ms(DAYS[0], 4), "amount: must be > 0")
    tree.write(root)
    labels: list[dict[str, Any]] = [
        {
            "transaction_id": tid,
            "is_fraud": n % 3 == 0 or n % 5 == 0,
            "labelled_at": 1796600000000 + n,
            "account_id": f"acct-{n % 7}",
            "event_time": 1796500000000,
        }
        for n, tid in enumerate(ids)
    ]
    write_labels(root, labels)
    return ids
