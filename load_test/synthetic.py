"""Synthetic transactions for the load test (pure: no I/O, no AWS).

Every record is one UTF-8 JSON object following section 1 of the data contract, or, for a
fraction ``invalid_ratio`` of them, deliberately broken bytes that the consumer must route to the
dead-letter output.

Valid records carry an extra field ``"expected_rules"``: the rule ids the record's *archetype* is
designed to trigger (``[]`` for ordinary transactions). Fields outside the contract are passed
through by the consumer, so the label travels with the transaction to the outputs.

To make the labels a usable oracle, ordinary traffic is shaped so that no rule fires by
accident:

* amounts of ordinary transactions are 5.01..500.00 (never ``card_testing``, never ``>= 1000``);
* every account has a home country, a home location, a stable device and a large balance; an
  ordinary transaction happens at home (a few km of jitter, so never ``impossible_travel``), with
  ``destination_country == origin_country`` and the account's usual device;
* the generator remembers the event times it handed out per account and avoids picking an
  account that already has 3 transactions in the last 61 s (so ``velocity`` does not fire). This
  only works while ``rate <= accounts / 20`` per second; above that, ``velocity`` will fire on
  some records whose label does not list it.

Invalid records carry no label (they are not necessarily JSON at all).

Everything is drawn from one seedable :class:`random.Random`, and "now" comes from an injectable
clock, so a seed plus a fixed clock gives byte-identical output.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from load_test.producer import Entry

# (country, currency, home city latitude, longitude)
COUNTRIES: tuple[tuple[str, str, float, float], ...] = (
    ("US", "USD", 40.7128, -74.0060),
    ("GB", "GBP", 51.5074, -0.1278),
    ("DE", "EUR", 52.5200, 13.4050),
    ("FR", "EUR", 48.8566, 2.3522),
    ("ES", "EUR", 40.4168, -3.7038),
    ("IT", "EUR", 41.9028, 12.4964),
    ("NL", "EUR", 52.3676, 4.9041),
    ("SE", "SEK", 59.3293, 18.0686),
    ("PL", "PLN", 52.2297, 21.0122),
    ("JP", "JPY", 35.6762, 139.6503),
    ("AU", "AUD", -33.8688, 151.2093),
    ("BR", "BRL", -23.5505, -46.6333),
    ("CA", "CAD", 43.6532, -79.3832),
    ("MX", "MXN", 19.4326, -99.1332),
    ("IN", "INR", 19.0760, 72.8777),
    ("SG", "SGD", 1.3521, 103.8198),
    ("ZA", "ZAR", -26.2041, 28.0473),
)

MERCHANT_CATEGORIES: tuple[str, ...] = (
    "grocery",
    "restaurants",
    "fuel",
    "electronics",
    "travel",
    "fashion",
    "pharmacy",
    "entertainment",
    "utilities",
    "jewelry",
)

ORDINARY_CHANNELS: tuple[str, ...] = ("card_present", "card_present", "online", "atm", "transfer")

# Fraud archetypes: name -> (relative weight, rules it is designed to trigger).
FRAUD_ARCHETYPES: dict[str, tuple[float, tuple[str, ...]]] = {
    "high_amount": (0.35, ("high_amount",)),
    "cross_border": (0.30, ("cross_border",)),
    "high_amount_cross_border": (0.10, ("high_amount", "cross_border")),
    "low_balance_high_amount": (0.15, ("low_balance_high_amount",)),
    "new_device_high_amount": (0.10, ("new_device_high_amount",)),
}

INVALID_KINDS: tuple[str, ...] = (
    "not_json",
    "nan_amount",
    "invalid_utf8",
    "not_object",
    "missing_amount",
    "missing_transaction_id",
    "negative_amount",
    "zero_amount",
    "amount_as_string",
    "bad_timestamp",
    "latitude_out_of_range",
    "bad_channel",
)

VELOCITY_WINDOW_MS = 60_000
# Extra distance from the velocity window, so clock granularity can never matter.
VELOCITY_MARGIN_MS = 1_000
# Transactions of one account allowed inside the window before "velocity" fires is 3.
VELOCITY_LIMIT = 3
_ACCOUNT_PICK_TRIES = 32


@dataclass(frozen=True)
class SyntheticRecord:
    """One generated record: the bytes to put, its partition key and what it is meant to be."""

    data: bytes
    account_id: str
    kind: str  # "ordinary", "fraud:<archetype>" or "invalid:<kind>"
    expected_rules: tuple[str, ...]

    @property
    def is_fraud(self) -> bool:
        return self.kind.startswith("fraud:")

    @property
    def is_invalid(self) -> bool:
        return self.kind.startswith("invalid:")

    def to_entry(self) -> Entry:
        return Entry(data=self.data, partition_key=self.account_id)


@dataclass(frozen=True)
class _Account:
    account_id: str
    country: str
    currency: str
    latitude: float
    longitude: float
    device_id: str
    balance_cents: int
    created_at: str


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with a millisecond fraction and ``Z``: ``2026-11-24T09:00:00.123Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _money(cents: int) -> float:
    """A JSON number with at most two decimals (``repr`` of the float is the shortest literal)."""
    return float(Decimal(cents) / 100)


class TransactionGenerator:
    """Stateful generator of synthetic transactions (see the module docstring).

    ``fraud_ratio`` and ``invalid_ratio`` are fractions of *all* generated records; each record
    independently is invalid with probability ``invalid_ratio``, else fraud with probability
    ``fraud_ratio``, else ordinary.
    """

    def __init__(
        self,
        *,
        accounts: int = 1000,
        fraud_ratio: float = 0.05,
        invalid_ratio: float = 0.0,
        seed: int | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if accounts < 1 or accounts > 999_999:
            raise ValueError("accounts must be 1..999999")
        if not 0.0 <= fraud_ratio <= 1.0 or not 0.0 <= invalid_ratio <= 1.0:
            raise ValueError("fraud_ratio and invalid_ratio must be within 0..1")
        if fraud_ratio + invalid_ratio > 1.0:
            raise ValueError("fraud_ratio + invalid_ratio must not exceed 1")
        if rng is not None and seed is not None:
            raise ValueError("pass either seed or rng, not both")
        self.accounts = accounts
        self.fraud_ratio = fraud_ratio
        self.invalid_ratio = invalid_ratio
        self._rng = rng if rng is not None else random.Random(seed)
        self._now = now if now is not None else _now_utc
        # Account profiles come from their own derived seeds, so an account looks the same
        # whatever order accounts are first used in.
        self._profile_seed = self._rng.getrandbits(64)
        self._profiles: dict[int, _Account] = {}
        # Event times (epoch ms) of the last VELOCITY_LIMIT valid transactions per account.
        self._recent: dict[int, deque[int]] = {}
        self.counts: dict[str, int] = {}

    # -- accounts -----------------------------------------------------------------------------

    def _account(self, index: int) -> _Account:
        profile = self._profiles.get(index)
        if profile is None:
            prng = random.Random(f"{self._profile_seed}:{index}")
            country, currency, lat, lon = prng.choice(COUNTRIES)
            created = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(
                days=prng.randrange(0, 3650), seconds=prng.randrange(0, 86_400)
            )
            profile = _Account(
                account_id=f"acct-{index:06d}",
                country=country,
                currency=currency,
                # Home: within ~20 km of the country's main city.
                latitude=round(lat + prng.uniform(-0.1, 0.1), 5),
                longitude=round(lon + prng.uniform(-0.1, 0.1), 5),
                device_id=f"dev-{prng.getrandbits(48):012x}",
                balance_cents=prng.randrange(2_000_000, 50_000_000),  # 20k..500k
                created_at=format_timestamp(created),
            )
            self._profiles[index] = profile
        return profile

    def _velocity_ok(self, index: int, now_ms: int) -> bool:
        recent = self._recent.get(index)
        if recent is None or len(recent) < VELOCITY_LIMIT:
            return True
        # recent[0] is the oldest of the last three; if it is outside the window (with margin)
        # then at most two earlier transactions are inside, and this one is the third.
        return recent[0] <= now_ms - VELOCITY_WINDOW_MS - VELOCITY_MARGIN_MS

    def _pick_account(self, now_ms: int, *, need_history: bool = False) -> int | None:
        """An account that will not trip ``velocity`` (best effort); None if ``need_history``
        and no suitable account with history was found."""
        fallback: int | None = None
        for _ in range(_ACCOUNT_PICK_TRIES):
            index = self._rng.randrange(1, self.accounts + 1)
            if need_history and index not in self._recent:
                continue
            if self._velocity_ok(index, now_ms):
                return index
            if fallback is None:
                fallback = index
        if need_history:
            return None
        return fallback if fallback is not None else self._rng.randrange(1, self.accounts + 1)

    def _remember(self, index: int, now_ms: int) -> None:
        recent = self._recent.get(index)
        if recent is None:
            recent = self._recent[index] = deque(maxlen=VELOCITY_LIMIT)
        recent.append(now_ms)

    # -- records ------------------------------------------------------------------------------

    def _transaction_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _base(self, account: _Account, timestamp: str, amount_cents: int) -> dict[str, Any]:
        rng = self._rng
        channel = rng.choice(ORDINARY_CHANNELS)
        record: dict[str, Any] = {
            "transaction_id": self._transaction_id(),
            "account_id": account.account_id,
            "amount": _money(amount_cents),
            "timestamp": timestamp,
            "currency": account.currency,
            "account_balance": _money(account.balance_cents),
            "origin_country": account.country,
            "destination_country": account.country,
            # A few km around home: consecutive transactions are always < 100 km apart.
            "latitude": round(account.latitude + rng.uniform(-0.03, 0.03), 5),
            "longitude": round(account.longitude + rng.uniform(-0.03, 0.03), 5),
            "merchant_id": f"merch-{rng.randrange(1, 50_000):05d}",
            "merchant_category": rng.choice(MERCHANT_CATEGORIES),
            "channel": channel,
            "device_id": account.device_id,
            "account_created_at": account.created_at,
        }
        if channel == "online":
            record["ip_address"] = f"198.51.100.{rng.randrange(1, 255)}"
        return record

    def _ordinary_cents(self) -> int:
        return self._rng.randrange(501, 50_001)  # 5.01 .. 500.00

    def _foreign_country(self, home: str) -> str:
        while True:
            country = self._rng.choice(COUNTRIES)[0]
            if country != home:
                return country

    def _fraud(self, now_ms: int, timestamp: str) -> tuple[str, int, dict[str, Any]]:
        rng = self._rng
        names = list(FRAUD_ARCHETYPES)
        weights = [FRAUD_ARCHETYPES[name][0] for name in names]
        archetype = rng.choices(names, weights=weights)[0]
        index: int | None = None
        if archetype == "new_device_high_amount":
            # The rule needs an earlier transaction of the account in the stream.
            index = self._pick_account(now_ms, need_history=True)
            if index is None:
                archetype = "high_amount"
        if index is None:
            index = self._pick_account(now_ms)
            assert index is not None
        account = self._account(index)

        if archetype in ("high_amount", "high_amount_cross_border"):
            cents = rng.randrange(1_000_001, 5_000_001)  # 10000.01 .. 50000.00
            record = self._base(account, timestamp, cents)
            # Balance far above the amount: low_balance_high_amount must not fire.
            record["account_balance"] = _money(max(account.balance_cents, cents * 3))
            if archetype == "high_amount_cross_border":
                record["destination_country"] = self._foreign_country(account.country)
                record["channel"] = "online"
        elif archetype == "cross_border":
            record = self._base(account, timestamp, self._ordinary_cents())
            record["destination_country"] = self._foreign_country(account.country)
            record["channel"] = "online"
        elif archetype == "low_balance_high_amount":
            cents = rng.randrange(100_000, 1_000_001)  # 1000.00 .. 10000.00
            record = self._base(account, timestamp, cents)
            # amount > 0.9 * balance  <=>  balance < amount / 0.9; keep it well inside.
            balance = rng.randrange(cents // 2, cents + 1)  # 0.5x .. 1.0x the amount
            record["account_balance"] = _money(balance)
        else:  # new_device_high_amount
            cents = rng.randrange(100_000, 1_000_001)  # 1000.00 .. 10000.00
            record = self._base(account, timestamp, cents)
            record["device_id"] = f"dev-new-{rng.getrandbits(48):012x}"
        if record["channel"] == "atm":
            record["channel"] = "card_present"
        return archetype, index, record

    def _invalid(self, timestamp: str) -> tuple[str, str, bytes]:
        rng = self._rng
        kind = rng.choice(INVALID_KINDS)
        index = rng.randrange(1, self.accounts + 1)
        account = self._account(index)
        record = self._base(account, timestamp, self._ordinary_cents())
        if kind == "not_json":
            return kind, account.account_id, b"this is not json {" + account.account_id.encode()
        if kind == "nan_amount":
            body = json.dumps(record).replace(
                f'"amount": {json.dumps(record["amount"])}', '"amount": NaN'
            )
            return kind, account.account_id, body.encode()
        if kind == "invalid_utf8":
            body = json.dumps(record, ensure_ascii=False).replace(
                account.account_id, account.account_id + "\udcff"
            )
            return kind, account.account_id, body.encode("utf-8", "surrogateescape")
        if kind == "not_object":
            return kind, account.account_id, json.dumps([record]).encode()
        if kind == "missing_amount":
            del record["amount"]
        elif kind == "missing_transaction_id":
            del record["transaction_id"]
        elif kind == "negative_amount":
            record["amount"] = -record["amount"]
        elif kind == "zero_amount":
            record["amount"] = 0
        elif kind == "amount_as_string":
            record["amount"] = f"{record['amount']:.2f}"
        elif kind == "bad_timestamp":
            record["timestamp"] = rng.choice(["yesterday", "2026-02-30T10:00:00Z", "1795500000000"])
        elif kind == "latitude_out_of_range":
            record["latitude"] = 91.5
        else:  # bad_channel
            record["channel"] = "mail_order"
        return kind, account.account_id, json.dumps(record).encode()

    def next_record(self) -> SyntheticRecord:
        moment = self._now().astimezone(UTC)
        timestamp = format_timestamp(moment)
        now_ms = int(moment.timestamp()) * 1000 + moment.microsecond // 1000
        draw = self._rng.random()
        if draw < self.invalid_ratio:
            kind, account_id, data = self._invalid(timestamp)
            result = SyntheticRecord(data, account_id, f"invalid:{kind}", ())
        else:
            if draw < self.invalid_ratio + self.fraud_ratio:
                archetype, index, record = self._fraud(now_ms, timestamp)
                kind = f"fraud:{archetype}"
                expected = FRAUD_ARCHETYPES[archetype][1]
            else:
                picked = self._pick_account(now_ms)
                assert picked is not None
                index = picked
                record = self._base(self._account(index), timestamp, self._ordinary_cents())
                kind, expected = "ordinary", ()
            record["expected_rules"] = list(expected)
            self._remember(index, now_ms)
            result = SyntheticRecord(
                json.dumps(record, separators=(",", ":")).encode(),
                record["account_id"],
                kind,
                expected,
            )
        self.counts[result.kind] = self.counts.get(result.kind, 0) + 1
        return result

    def records(self, count: int) -> Iterator[SyntheticRecord]:
        for _ in range(count):
            yield self.next_record()

    @property
    def fraud_count(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind.startswith("fraud:"))

    @property
    def invalid_count(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind.startswith("invalid:"))


def generate_records(
    count: int,
    *,
    accounts: int = 1000,
    fraud_ratio: float = 0.05,
    invalid_ratio: float = 0.0,
    seed: int | None = None,
    rng: random.Random | None = None,
    now: Callable[[], datetime] | None = None,
) -> Iterator[SyntheticRecord]:
    """``count`` synthetic records with their labels (see :class:`TransactionGenerator`)."""
    generator = TransactionGenerator(
        accounts=accounts,
        fraud_ratio=fraud_ratio,
        invalid_ratio=invalid_ratio,
        seed=seed,
        rng=rng,
        now=now,
    )
    return generator.records(count)


def generate_entries(
    count: int,
    *,
    accounts: int = 1000,
    fraud_ratio: float = 0.05,
    invalid_ratio: float = 0.0,
    seed: int | None = None,
    rng: random.Random | None = None,
    now: Callable[[], datetime] | None = None,
) -> Iterator[Entry]:
    """``count`` synthetic records as producer entries (partition key = account id)."""
    for record in generate_records(
        count,
        accounts=accounts,
        fraud_ratio=fraud_ratio,
        invalid_ratio=invalid_ratio,
        seed=seed,
        rng=rng,
        now=now,
    ):
        yield record.to_entry()
