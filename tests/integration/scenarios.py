"""Hand-made fraud archetypes, one account each, that make every contract rule fire."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from load_test.producer import Entry


def _txn(account: str, at: datetime, amount: str, **extra: Any) -> bytes:
    body = {
        "transaction_id": str(uuid.uuid4()),
        "account_id": account,
        "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **extra,
    }
    return (json.dumps(body)[:-1] + f', "amount": {amount}}}').encode()


def scenario_entries(tag: str) -> list[Entry]:
    """Records for every rule, plus producer-retry duplicates; accounts unique to `tag`."""
    now = datetime.now(UTC).replace(microsecond=0)
    run = uuid.uuid4().hex[:6]
    out: list[Entry] = []

    def put(account: str, data: bytes) -> None:
        out.append(Entry(data, account))

    velocity = f"{tag}-velocity-{run}"
    for n in range(5):  # 4th and 5th within 60 s fire
        put(velocity, _txn(velocity, now + timedelta(seconds=10 * n), "50.00"))
    card = f"{tag}-card-{run}"
    for n in range(6):  # 5th and 6th small ones within 10 min fire
        put(card, _txn(card, now + timedelta(seconds=50 * n), "1.00"))
    travel = f"{tag}-travel-{run}"
    put(travel, _txn(travel, now, "80", latitude=52.52, longitude=13.405))
    put(travel, _txn(travel, now + timedelta(hours=1), "80", latitude=40.7128, longitude=-74.006))
    device = f"{tag}-device-{run}"
    put(device, _txn(device, now, "20", device_id="known-phone"))
    put(device, _txn(device, now + timedelta(minutes=5), "1500", device_id="new-laptop"))
    balance = f"{tag}-balance-{run}"
    put(balance, _txn(balance, now, "1000", account_balance=1100))
    border = f"{tag}-border-{run}"
    put(border, _txn(border, now, "30", origin_country="DE", destination_country="fr"))
    retried = f"{tag}-retried-{run}"
    twice = _txn(retried, now, "25000")
    put(retried, twice)
    put(retried, twice)  # the producer's retry: the same transaction as a second record
    return out
