"""A small hand-built output tree, written with the project's own line builders
(consumer/batch/lines.py) and key layouts (consumer/sinks/s3_batches.py)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumer.batch.lines import dead_letter_line, decision_line, flagged_line, to_json
from consumer.records import RecordPosition, Transaction, parse_transaction
from consumer.rules import Decision
from consumer.rules.engine import Reason
from consumer.sinks.s3_batches import dead_letter_key, decisions_key, flagged_key, shadow_key

SHARD = "shardId-000000000000"
# The decision line's fields added for the analysts' report (docs/contract.md).
OLDER_LINE_LACKS = (
    "amount",
    "currency",
    "merchant_id",
    "merchant_category",
    "channel",
    "origin_country",
    "destination_country",
)


def arrival_ms(day: str, hour: int, minute: int = 0) -> int:
    at = datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}:00+00:00")
    return int(at.timestamp() * 1000)


class Tree:
    """Lines collected per key, written as gzip JSON Lines objects by `write`."""

    def __init__(self) -> None:
        self.objects: dict[str, list[str]] = {}
        self._seq = 0

    def position(self, arrival: int) -> RecordPosition:
        self._seq += 1
        return RecordPosition(SHARD, f"{self._seq:056d}", 0, arrival)

    def judge(
        self,
        n: int,
        arrival: int,
        amount: str = "50.00",
        rules: tuple[tuple[str, str], ...] = (),
        shadow: tuple[tuple[str, str], ...] = (),
        score: float | None = None,
        rules_version: str = "v1",
        model_version: str | None = None,
        older_line: bool = False,
        **fields: Any,
    ) -> str:
        """One judged transaction: its decision line, and its flagged / shadow lines.
        `older_line`: the decision line as written before it carried the amount and the
        merchant, channel and country fields."""
        record = {
            "transaction_id": f"t-{n}",
            "account_id": f"acct-{n % 7}",
            "amount": 0,
            "timestamp": arrival - 1000,
            **fields,
        }
        data = json.dumps(record).replace('"amount": 0', f'"amount": {amount}').encode()
        txn = parse_transaction(data)
        assert isinstance(txn, Transaction)
        position = self.position(arrival)
        order = {"low": 1, "medium": 2, "high": 3}
        decision = Decision(
            tuple(Reason(rule, "d") for rule, _ in rules),
            max((s for _, s in rules), key=order.__getitem__) if rules else None,
        )
        line = decision_line(txn, decision, position, rules_version)
        if older_line:
            for key in OLDER_LINE_LACKS:
                del line[key]
        extra: dict[str, Any] = {}
        if score is not None:
            extra = {"model_score": score, "model_version": model_version}
        self._add(decisions_key("", position), {**line, **extra})
        detected = datetime.fromtimestamp(arrival / 1000, UTC)
        if rules:
            flagged = flagged_line(txn, decision, position, detected, rules_version)
            self._add(flagged_key("", position), {**flagged, **extra})
        if shadow:
            sdec = Decision(
                tuple(Reason(rule, "d") for rule, _ in shadow),
                max((s for _, s in shadow), key=order.__getitem__),
            )
            sline = flagged_line(txn, sdec, position, detected, rules_version)
            sline["flagged_by_live_rules"] = bool(rules)
            self._add(shadow_key("", position), sline)
        return txn.transaction_id

    def dead(self, arrival: int, error: str) -> None:
        position = self.position(arrival)
        self._add(dead_letter_key("", position), dead_letter_line(b"x", position, error))

    def _add(self, key: str, line: dict[str, Any]) -> None:
        self.objects.setdefault(key, []).append(to_json(line))

    def write(self, root: Path, decisions: bool = True) -> None:
        for key, lines in self.objects.items():
            if not decisions and key.startswith("decisions/"):
                continue
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))


def write_labels(root: Path, rows: list[dict[str, Any]], name: str = "l.jsonl") -> None:
    folder = root / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
