"""Synthetic transactions for the load test (pure: no I/O, no AWS).

Every record is one UTF-8 JSON object following section 1 of the data contract, or, for a
fraction ``invalid_ratio`` of them, deliberately broken bytes that the consumer must route to the
dead-letter output.

Valid records carry an extra field ``"expected_rules"``: exactly the rule ids (docs/contract.md
section 2, default settings) that fire on that record, given the records this generator emitted
before it in order. Fields outside the contract are passed through by the consumer, so the label
travels with the transaction to the outputs and scores recall and precision per rule.

Traffic
-------
* **Ordinary customers** (``kind="ordinary"``, label ``[]``) use the ordinary pool of ``accounts``
  accounts. Each account has a home country, a home location, one device and a large balance.
  Amounts are 5.01..500.00 (never ``card_testing``, never ``>= 1000``), destination country =
  home country, always the account's own device. A located transaction moves a few km from the
  account's last located point and never leaves a 40 km circle around home, so any two located
  transactions of the account are < 100 km apart (never ``impossible_travel``); online ones are
  not located. An account already holding 3 transactions in the last 61 s is not picked (never
  ``velocity``). That needs ``rate <= accounts * 3 / 61`` per second of event time; when every
  account is busy (a burst clock, or too few accounts for the rate) the record goes to the
  account least likely to fire and, if ``velocity`` does fire, it is labelled so and counted as
  ``kind="ordinary:velocity"``: labels stay exact, the pool is simply too small.
* **Fraud archetypes** each get a fresh account of their own (a second pool, disjoint from the
  ordinary one and never reused), so their history is only what the archetype itself emitted.
  Multi-record archetypes run over successive ``next_record()`` calls, interleaved with other
  traffic, with the generator's clock as event time: their steps are at least ``STEP_GAP_MS``
  (50 ms) apart, or ``PATIENCE_RECORDS`` (50) records apart when the clock does not move. See
  :data:`FRAUD_ARCHETYPES`.

  ==========================  ==============================================================
  ``large_amount``            one transaction > 10000 (balance far above): ``high_amount``
  ``large_amount_abroad``     the same, to a foreign country: + ``cross_border``
  ``cross_border``            one ordinary-sized purchase from a foreign merchant
  ``low_balance``             one transaction of 1000..10000 above 90% of the balance
  ``account_takeover``        the owner's ordinary purchase, then an online one of
                              1000..9999.99 from a new device, 70% to a foreign country:
                              ``new_device_high_amount`` (+ ``cross_border``)
  ``card_testing``            5..8 charges of 0.01..5.00 in a burst (one per 50 ms or so,
                              all of them within 10 minutes and 4 within 60 s): the 4th fires
                              ``velocity``, the 5th and later ``card_testing`` + ``velocity``
  ``velocity_attack``         4..7 purchases of 10..900 in a burst (one per 50 ms or so,
                              all within 60 s): the 4th and later
                              ``velocity``
  ``impossible_travel``       a card-present purchase at home, then one >= 800 km away 50 ms
                              later: ``impossible_travel``
                              (+ ``cross_border`` when the far city is abroad)
  ==========================  ==============================================================

  A record of an archetype is ``kind="fraud:<archetype>"`` when its label is not empty and
  ``kind="setup:<archetype>"`` when no rule fires on it (the owner's purchase before a
  takeover, the first 3 of a burst, the first located point of a journey). Each label is
  computed from the account's actual history at the moment the record is emitted, so a clock
  that does not cooperate changes the label, never its truth: with a frozen clock the second
  point of a journey comes at the same instant and fires nothing (only a strictly earlier one
  counts); with a very slow clock a burst spreads beyond the window and fires nothing; a
  journey whose speed would come near the 900 km/h threshold is sent without a location.

``fraud_ratio`` is the share of all records that carry a label (approximately: campaigns are
started at the rate that gives it with the archetypes' typical shapes, and a run can end in the
middle of one). At most about 60% of the records can be labelled, because every multi-record
archetype also emits unlabelled setup records. The rules are taken at their contract defaults.

Account and transaction ids carry a run tag derived from the seed and the clock's first reading,
so two runs against the same consumer state (Redis keeps account history across runs) never
share an account (a different home in the new run would fire ``impossible_travel`` against the
old one) or a transaction id (it would be a duplicate). A seed plus a fixed clock still gives
byte-identical output: everything is drawn from one seedable :class:`random.Random` and "now"
comes from an injectable clock (made non-decreasing at millisecond resolution).

Invalid records carry no label (they are not necessarily JSON at all) and enter no state.

Realistic mode (``realistic=True``, off by default so existing runs keep their exact bytes)
-------------------------------------------------------------------------------------------
For training and judging a model (docs/model.md), where labels that are the rules' own verdicts
would make the rules perfect by construction:

* every valid record also carries ``"fraud"`` (true for every record a fraudster made, the
  unlabelled first steps of a burst included; false for the owner's own purchases, such as the
  first step of a takeover or a journey) and ``"fraud_archetype"`` (its name, or null);
* legitimate noise on ordinary accounts: purchases abroad (``cross_border``), big-ticket
  purchases of 500.01..15000.00 (``high_amount`` above 10000) and a purchase from a new phone
  (``new_device_high_amount`` from 1000), all with ``"fraud": false``;
* two archetypes the rules mostly miss, run on ordinary accounts (with their history):
  ``quiet_takeover`` (2..4 online purchases of 150.00..999.99 from a new device, 20..90 s
  apart, domestic) and ``slow_card_testing`` (3..6 charges of 0.50..4.99 from a bot device,
  at least 160 s apart, so never 5 within 10 minutes).

``expected_rules`` stays exactly the rules that fire, noise and new archetypes included.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from consumer.ingest.entries import Entry
from consumer.rules.config import RULE_IDS

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

# Places a card can impossibly show up at: every home city plus far cities of large countries
# (so a journey is sometimes domestic: impossible_travel without cross_border).
# (country, latitude, longitude)
FAR_CITIES: tuple[tuple[str, float, float], ...] = (
    *((country, lat, lon) for country, _, lat, lon in COUNTRIES),
    ("US", 34.0522, -118.2437),  # Los Angeles
    ("US", 41.8781, -87.6298),  # Chicago
    ("CA", 49.2827, -123.1207),  # Vancouver
    ("AU", -31.9505, 115.8605),  # Perth
    ("BR", -3.1190, -60.0217),  # Manaus
    ("IN", 28.7041, 77.1025),  # Delhi
    ("MX", 32.5149, -117.0382),  # Tijuana
    ("JP", 43.0618, 141.3545),  # Sapporo
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

# Labels list the contract's rule ids in the contract's order (RULE_IDS).

# Fraud archetypes: name -> (relative weight among started archetypes, every rule its records
# can carry). Each record's own label is the subset that fires on it.
FRAUD_ARCHETYPES: dict[str, tuple[float, tuple[str, ...]]] = {
    "large_amount": (0.20, ("high_amount",)),
    "large_amount_abroad": (0.05, ("high_amount", "cross_border")),
    "cross_border": (0.20, ("cross_border",)),
    "low_balance": (0.12, ("low_balance_high_amount",)),
    "account_takeover": (0.13, ("cross_border", "new_device_high_amount")),
    "card_testing": (0.09, ("velocity", "card_testing")),
    "velocity_attack": (0.09, ("velocity",)),
    "impossible_travel": (0.12, ("cross_border", "impossible_travel")),
}

# Realistic mode only: archetypes on ordinary accounts that the contract rules mostly miss
# (velocity can still fire when the owner was busy too; card_testing when the clock stalls).
HARD_ARCHETYPES: dict[str, tuple[float, tuple[str, ...]]] = {
    "quiet_takeover": (0.15, ("velocity",)),
    "slow_card_testing": (0.10, ("velocity", "card_testing")),
}
# Realistic mode: shares of ordinary purchases that are legitimate but look odd.
NOISE_ABROAD = 0.03
NOISE_BIG_TICKET = 0.006
NOISE_NEW_PHONE = 0.004
# Steps of the hard archetypes, in ms: (least gap, most gap).
_HARD_GAP_MS: dict[str, tuple[int, int]] = {
    "quiet_takeover": (20_000, 90_000),
    "slow_card_testing": (160_000, 240_000),
}

# Typical shape of each archetype with a cooperative clock: (records, labelled records).
# Used only to start archetypes at the rate that makes fraud_ratio the labelled share.
_ARCHETYPE_SHAPE: dict[str, tuple[float, float]] = {
    "large_amount": (1.0, 1.0),
    "large_amount_abroad": (1.0, 1.0),
    "cross_border": (1.0, 1.0),
    "low_balance": (1.0, 1.0),
    "account_takeover": (2.0, 1.0),
    "card_testing": (6.5, 3.5),  # 5..8 records, labelled from the 4th
    "velocity_attack": (5.5, 2.5),  # 4..7 records, labelled from the 4th
    "impossible_travel": (2.0, 1.0),
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

# Rule thresholds (docs/contract.md section 2 defaults), in cents, milliseconds and km.
HIGH_AMOUNT_CENTS = 1_000_000
VELOCITY_WINDOW_MS = 60_000
VELOCITY_LIMIT = 3  # transactions allowed within the window; the 4th fires
LOW_BALANCE_MIN_CENTS = 100_000
LOW_BALANCE_RATIO = (9, 10)
TRAVEL_MIN_KM = 100.0
TRAVEL_MAX_KMH = 900.0
CARD_TESTING_MAX_CENTS = 500
CARD_TESTING_MIN_COUNT = 5
CARD_TESTING_WINDOW_MS = 600_000
NEW_DEVICE_MIN_CENTS = 100_000

# Ordinary accounts keep this much distance from the velocity window, so clock granularity or a
# consumer rounding at the bound can never matter.
VELOCITY_MARGIN_MS = 1_000
_ACCOUNT_PICK_TRIES = 32
# Ordinary located transactions stay within this radius of home (pairwise < 2x = 80 km < 100).
HOME_RADIUS_KM = 40.0
# A journey goes at least this far, and is only sent located when the implied speed is clearly
# above the threshold (floating point never decides the label).
TRAVEL_DISTANCE_KM = 800.0
TRAVEL_SAFE_KMH = 1_000.0
# The steps of a multi-record archetype are at least this far apart in event time: a bot's pace,
# and at most one step per 0.1 s tick of the load-test producer, which sends a key's next record
# only after its previous one succeeded (a whole burst in one tick would cost one call per record).
STEP_GAP_MS = 50
# A step waiting for the clock goes out anyway after this many records (a frozen clock).
PATIENCE_RECORDS = 50

EARTH_RADIUS_KM = 6371.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class SyntheticRecord:
    """One generated record: the bytes to put, its partition key and what it is meant to be."""

    data: bytes
    account_id: str
    # "ordinary", "ordinary:velocity", "fraud:<archetype>", "setup:<archetype>", "invalid:<kind>"
    kind: str
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


@dataclass(frozen=True)
class _Seen:
    """What the rules need of one earlier transaction of an account."""

    ts_ms: int
    cents: int
    point: tuple[float, float] | None
    device_id: str | None


@dataclass
class _Campaign:
    """A fraud archetype in progress on its own account."""

    archetype: str
    account: _Account
    total: int  # records it will emit
    history: list[_Seen] = field(default_factory=list)
    not_before_ms: int = 0  # the next step waits for the clock to reach this
    waiting_since: int = 0  # record counter when the current wait began
    params: dict[str, Any] = field(default_factory=dict)


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with a millisecond fraction and ``Z``: ``2026-11-24T09:00:00.123Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _money(cents: int) -> float:
    """A JSON number with at most two decimals (``repr`` of the float is the shortest literal)."""
    return float(Decimal(cents) / 100)


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def rules_fired(
    earlier: list[_Seen],
    txn: _Seen,
    *,
    origin: str,
    destination: str,
    balance_cents: int | None,
) -> tuple[str, ...]:
    """The rules of docs/contract.md section 2 (defaults) that fire on ``txn`` after the account's
    ``earlier`` transactions (stream order). Amounts and times are integers: exact."""
    fired: set[str] = set()
    t = txn.ts_ms
    everything = [*earlier, txn]
    if txn.cents > HIGH_AMOUNT_CENTS:
        fired.add("high_amount")
    if sum(1 for h in everything if t - VELOCITY_WINDOW_MS < h.ts_ms <= t) > VELOCITY_LIMIT:
        fired.add("velocity")
    if origin.upper() != destination.upper():
        fired.add("cross_border")
    num, den = LOW_BALANCE_RATIO
    if (
        balance_cents is not None
        and txn.cents >= LOW_BALANCE_MIN_CENTS
        and txn.cents * den > num * balance_cents
    ):
        fired.add("low_balance_high_amount")
    if txn.point is not None:
        located = [h for h in earlier if h.point is not None and h.ts_ms < t]
        if located:
            latest = max(h.ts_ms for h in located)
            previous = [h for h in located if h.ts_ms == latest][-1]
            assert previous.point is not None
            km = haversine_km(previous.point, txn.point)
            hours = (t - latest) / 3_600_000
            if km >= TRAVEL_MIN_KM and km / hours > TRAVEL_MAX_KMH:
                fired.add("impossible_travel")
    if txn.cents <= CARD_TESTING_MAX_CENTS:
        small = sum(
            1
            for h in everything
            if h.cents <= CARD_TESTING_MAX_CENTS and t - CARD_TESTING_WINDOW_MS < h.ts_ms <= t
        )
        if small >= CARD_TESTING_MIN_COUNT:
            fired.add("card_testing")
    if (
        txn.device_id is not None
        and txn.cents >= NEW_DEVICE_MIN_CENTS
        and earlier
        and all(h.device_id != txn.device_id for h in earlier)
    ):
        fired.add("new_device_high_amount")
    return tuple(rule for rule in RULE_IDS if rule in fired)


def _campaign_rate(fraud_ratio: float, invalid_ratio: float) -> float:
    """Probability that a free slot starts an archetype, so that about ``fraud_ratio`` of all
    records are labelled: with L labelled and R records per archetype on average, invalid
    share i and start probability c, labelled / all = L c (1 - i) / (1 + (R - 1) c)."""
    if fraud_ratio <= 0.0:
        return 0.0
    total = sum(weight for weight, _ in FRAUD_ARCHETYPES.values())
    records = sum(w * _ARCHETYPE_SHAPE[n][0] for n, (w, _) in FRAUD_ARCHETYPES.items()) / total
    labelled = sum(w * _ARCHETYPE_SHAPE[n][1] for n, (w, _) in FRAUD_ARCHETYPES.items()) / total
    denominator = labelled * (1.0 - invalid_ratio) - fraud_ratio * (records - 1.0)
    if denominator <= fraud_ratio:
        return 1.0
    return fraud_ratio / denominator


class TransactionGenerator:
    """Stateful generator of synthetic transactions (see the module docstring).

    ``invalid_ratio`` is the probability that a record is invalid; ``fraud_ratio`` the share of
    records that are labelled (see the module docstring for how it is reached).
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
        realistic: bool = False,
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
        # The run tag and transaction-id mask are fixed at the first record (seed + clock).
        self._run_tag = ""
        self._id_mask = 0
        self._last_ms: int | None = None
        self._emitted = 0
        # Ordinary pool: event times (epoch ms) of the last VELOCITY_LIMIT transactions and the
        # last located point, per account; a cursor over accounts never used yet.
        self._recent: dict[int, deque[int]] = {}
        self._last_point: dict[int, tuple[float, float]] = {}
        self._fresh_cursor = 1
        # Fraud pool: one fresh account per archetype, numbered after the ordinary pool.
        self._next_fraud_index = accounts + 1
        self._campaigns: list[_Campaign] = []
        self._campaign_rate = _campaign_rate(fraud_ratio, invalid_ratio)
        self._archetype_names = list(FRAUD_ARCHETYPES)
        self._archetype_weights = [FRAUD_ARCHETYPES[n][0] for n in self._archetype_names]
        self.realistic = realistic
        if realistic:
            self._archetype_names += list(HARD_ARCHETYPES)
            self._archetype_weights += [weight for weight, _ in HARD_ARCHETYPES.values()]
        # Realistic mode: per ordinary account, event times of its charges <= 5.00 (card_testing).
        self._small: dict[int, list[int]] = {}
        self.counts: dict[str, int] = {}

    # -- clock and ids ------------------------------------------------------------------------

    def _clock_ms(self) -> int:
        """The clock in epoch ms, never going backwards (event times stay in stream order)."""
        now_ms = (self._now().astimezone(UTC) - _EPOCH) // _MS
        if self._last_ms is None:
            digest = hashlib.sha256(f"{self._profile_seed}:{now_ms}".encode()).digest()
            self._run_tag = digest[:4].hex()
            self._id_mask = int.from_bytes(digest[4:20], "big")
        elif now_ms < self._last_ms:
            now_ms = self._last_ms
        self._last_ms = now_ms
        return now_ms

    def _transaction_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128) ^ self._id_mask, version=4))

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
                account_id=f"acct-{self._run_tag}-{index:06d}",
                country=country,
                currency=currency,
                # Home: within ~20 km of the country's main city.
                latitude=round(lat + prng.uniform(-0.1, 0.1), 5),
                longitude=round(lon + prng.uniform(-0.1, 0.1), 5),
                device_id=f"dev-{prng.getrandbits(48):012x}",
                balance_cents=prng.randrange(2_000_000, 50_000_000),  # 20k..500k
                created_at=format_timestamp(created),
            )
            if index > self.accounts:  # fraud pool: made once, used once
                return profile
            self._profiles[index] = profile
        return profile

    def _velocity_ok(self, index: int, now_ms: int) -> bool:
        recent = self._recent.get(index)
        if recent is None or len(recent) < VELOCITY_LIMIT:
            return True
        # recent[0] is the oldest of the last three; if it is outside the window (with margin)
        # then at most two earlier transactions are inside, and this one is the third.
        return recent[0] <= now_ms - VELOCITY_WINDOW_MS - VELOCITY_MARGIN_MS

    def _pick_account(self, now_ms: int) -> int:
        """An ordinary account that will not trip ``velocity`` if there is one to be found,
        else the one among those tried whose window empties first."""
        best = 0
        best_oldest = 0
        for _ in range(_ACCOUNT_PICK_TRIES):
            index = self._rng.randrange(1, self.accounts + 1)
            if self._velocity_ok(index, now_ms):
                return index
            oldest = self._recent[index][0]
            if best == 0 or oldest < best_oldest:
                best, best_oldest = index, oldest
        while self._fresh_cursor <= self.accounts:
            index = self._fresh_cursor
            self._fresh_cursor += 1
            if index not in self._recent:
                return index
        return best

    # -- records ------------------------------------------------------------------------------

    def _transaction(
        self,
        account: _Account,
        timestamp: str,
        cents: int,
        *,
        channel: str,
        point: tuple[float, float] | None,
        device_id: str | None = None,
        destination: str | None = None,
        balance_cents: int | None = None,
    ) -> dict[str, Any]:
        rng = self._rng
        record: dict[str, Any] = {
            "transaction_id": self._transaction_id(),
            "account_id": account.account_id,
            "amount": _money(cents),
            "timestamp": timestamp,
            "currency": account.currency,
            "account_balance": _money(
                account.balance_cents if balance_cents is None else balance_cents
            ),
            "origin_country": account.country,
            "destination_country": account.country if destination is None else destination,
        }
        if point is not None:
            record["latitude"], record["longitude"] = point
        record.update(
            {
                "merchant_id": f"merch-{rng.randrange(1, 50_000):05d}",
                "merchant_category": rng.choice(MERCHANT_CATEGORIES),
                "channel": channel,
                "device_id": account.device_id if device_id is None else device_id,
            }
        )
        if channel == "online":
            record["ip_address"] = f"198.51.100.{rng.randrange(1, 255)}"
        record["account_created_at"] = account.created_at
        return record

    def _ordinary_cents(self) -> int:
        return self._rng.randrange(501, 50_001)  # 5.01 .. 500.00

    def _near(self, around: tuple[float, float], km: float) -> tuple[float, float]:
        """A point within about ``km`` of ``around`` (a square of +-km in degrees)."""
        lat, lon = around
        dlat = km / 111.0
        dlon = dlat / max(0.2, math.cos(math.radians(lat)))
        return (
            round(lat + self._rng.uniform(-dlat, dlat), 5),
            round(lon + self._rng.uniform(-dlon, dlon), 5),
        )

    def _home_point(self, account: _Account) -> tuple[float, float]:
        return self._near((account.latitude, account.longitude), 2.0)

    def _foreign_country(self, home: str) -> str:
        while True:
            country = self._rng.choice(COUNTRIES)[0]
            if country != home:
                return country

    def _ordinary(self, now_ms: int, timestamp: str) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        index = self._pick_account(now_ms)
        account = self._account(index)
        recent = self._recent.get(index)
        if recent is None:
            recent = self._recent[index] = deque(maxlen=VELOCITY_LIMIT)
        # Event times never decrease, so the last three are the latest three: velocity fires
        # exactly when all three are within the window.
        fires = len(recent) == VELOCITY_LIMIT and recent[0] > now_ms - VELOCITY_WINDOW_MS
        recent.append(now_ms)
        channel = self._rng.choice(ORDINARY_CHANNELS)
        point: tuple[float, float] | None = None
        if channel != "online":
            home = (account.latitude, account.longitude)
            point = self._near(self._last_point.get(index, home), 5.0)
            if haversine_km(home, point) > HOME_RADIUS_KM:
                point = self._home_point(account)
            self._last_point[index] = point
        if self.realistic:
            return self._ordinary_noisy(index, account, timestamp, channel, point, fires)
        record = self._transaction(
            account, timestamp, self._ordinary_cents(), channel=channel, point=point
        )
        if fires:
            return "ordinary:velocity", ("velocity",), record
        return "ordinary", (), record

    def _ordinary_noisy(
        self,
        index: int,
        account: _Account,
        timestamp: str,
        channel: str,
        point: tuple[float, float] | None,
        fires_velocity: bool,
    ) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        """Realistic mode: an ordinary purchase, sometimes legitimately odd (abroad, big ticket,
        from a new phone). The label is still exactly the rules that fire."""
        rng = self._rng
        fired: set[str] = {"velocity"} if fires_velocity else set()
        # The deque already holds this transaction: an earlier one exists when it holds more.
        has_earlier = len(self._recent[index]) > 1
        draw = rng.random()
        cents = self._ordinary_cents()
        kind = "ordinary"
        if draw < NOISE_ABROAD:
            kind = "ordinary:abroad"
            record = self._transaction(
                account,
                timestamp,
                cents,
                channel="online",
                point=None,
                destination=self._foreign_country(account.country),
            )
            fired.add("cross_border")
        elif draw < NOISE_ABROAD + NOISE_BIG_TICKET:
            kind = "ordinary:big_ticket"
            cents = rng.randrange(50_001, 1_500_001)  # 500.01 .. 15000.00, balance >= 20000
            record = self._transaction(
                account, timestamp, cents, channel="card_present", point=point
            )
            if cents > HIGH_AMOUNT_CENTS:
                fired.add("high_amount")
        elif draw < NOISE_ABROAD + NOISE_BIG_TICKET + NOISE_NEW_PHONE:
            kind = "ordinary:new_phone"
            cents = rng.randrange(501, 250_001)  # 5.01 .. 2500.00
            record = self._transaction(
                account,
                timestamp,
                cents,
                channel="online",
                point=None,
                device_id=f"dev-phone-{rng.getrandbits(48):012x}",
            )
            if has_earlier and cents >= NEW_DEVICE_MIN_CENTS:
                fired.add("new_device_high_amount")
        else:
            record = self._transaction(account, timestamp, cents, channel=channel, point=point)
        if "velocity" in fired and kind == "ordinary":
            kind = "ordinary:velocity"
        record["fraud"] = False
        record["fraud_archetype"] = None
        return kind, tuple(rule for rule in RULE_IDS if rule in fired), record

    # -- fraud archetypes ---------------------------------------------------------------------

    def _start_campaign(self, now_ms: int) -> _Campaign:
        rng = self._rng
        archetype = rng.choices(self._archetype_names, weights=self._archetype_weights)[0]
        if archetype in HARD_ARCHETYPES:
            return self._start_hard_campaign(archetype, now_ms)
        index = self._next_fraud_index
        self._next_fraud_index += 1
        account = self._account(index)
        total = {
            "account_takeover": 2,
            "impossible_travel": 2,
            "card_testing": rng.randint(5, 8),
            "velocity_attack": rng.randint(4, 7),
        }.get(archetype, 1)
        campaign = _Campaign(archetype, account, total, waiting_since=self._emitted)
        if archetype == "card_testing":
            campaign.params["device_id"] = f"dev-bot-{rng.getrandbits(48):012x}"
        self._campaigns.append(campaign)
        return campaign

    def _start_hard_campaign(self, archetype: str, now_ms: int) -> _Campaign:
        """Realistic mode: a fraudster on an ordinary account (its history is the owner's)."""
        rng = self._rng
        index = self._pick_account(now_ms)
        total = rng.randint(2, 4) if archetype == "quiet_takeover" else rng.randint(3, 6)
        campaign = _Campaign(archetype, self._account(index), total, waiting_since=self._emitted)
        campaign.params["index"] = index
        campaign.params["device_id"] = f"dev-x-{rng.getrandbits(48):012x}"
        self._campaigns.append(campaign)
        return campaign

    def _hard_step(
        self, campaign: _Campaign, now_ms: int, timestamp: str
    ) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        """One record of a hard archetype; its label from the account's tracked history: only
        velocity (the owner's recent purchases count) and card_testing can fire."""
        rng = self._rng
        index: int = campaign.params["index"]
        recent = self._recent.get(index)
        if recent is None:
            recent = self._recent[index] = deque(maxlen=VELOCITY_LIMIT)
        fired: set[str] = set()
        if len(recent) == VELOCITY_LIMIT and recent[0] > now_ms - VELOCITY_WINDOW_MS:
            fired.add("velocity")
        recent.append(now_ms)
        if campaign.archetype == "quiet_takeover":
            cents = rng.randrange(15_000, 100_000)  # 150.00 .. 999.99: below new_device's 1000
        else:
            cents = rng.randrange(50, 500)  # 0.50 .. 4.99
            small = self._small.setdefault(index, [])
            small.append(now_ms)
            inside = sum(1 for t in small if t > now_ms - CARD_TESTING_WINDOW_MS)
            if inside >= CARD_TESTING_MIN_COUNT:
                fired.add("card_testing")
        record = self._transaction(
            campaign.account,
            timestamp,
            cents,
            channel="online",
            point=None,
            device_id=campaign.params["device_id"],
        )
        campaign.history.append(_Seen(now_ms, cents, None, campaign.params["device_id"]))
        if len(campaign.history) >= campaign.total:
            self._campaigns.remove(campaign)
        else:
            low, high = _HARD_GAP_MS[campaign.archetype]
            campaign.not_before_ms = now_ms + rng.randint(low, high)
            campaign.waiting_since = self._emitted
        record["fraud"] = True
        record["fraud_archetype"] = campaign.archetype
        expected = tuple(rule for rule in RULE_IDS if rule in fired)
        prefix = "fraud" if expected else "missed"
        return f"{prefix}:{campaign.archetype}", expected, record

    def _ready_campaign(self, now_ms: int) -> _Campaign | None:
        for campaign in self._campaigns:
            if (
                now_ms >= campaign.not_before_ms
                or self._emitted - campaign.waiting_since >= PATIENCE_RECORDS
            ):
                return campaign
        return None

    def _far_city(self, account: _Account) -> tuple[str, tuple[float, float]]:
        """A place at least TRAVEL_DISTANCE_KM from home: half the time in the home country
        when it is large enough to have one, else anywhere."""
        home = (account.latitude, account.longitude)
        # Cities with room for the 5 km jitter around them.
        far = [c for c in FAR_CITIES if haversine_km(home, c[1:]) >= TRAVEL_DISTANCE_KM + 10]
        domestic = [c for c in far if c[0] == account.country]
        pool = domestic if domestic and self._rng.random() < 0.5 else far
        country, lat, lon = self._rng.choice(pool)
        return country, self._near((lat, lon), 5.0)

    def _campaign_record(
        self, campaign: _Campaign, now_ms: int, timestamp: str
    ) -> tuple[dict[str, Any], int, tuple[float, float] | None, int]:
        """The next record of ``campaign``, with its amount in cents, location and balance."""
        rng = self._rng
        account = campaign.account
        step = len(campaign.history)  # 0-based
        archetype = campaign.archetype
        point: tuple[float, float] | None
        balance = account.balance_cents
        if archetype in ("large_amount", "large_amount_abroad"):
            cents = rng.randrange(1_000_001, 5_000_001)  # 10000.01 .. 50000.00
            # Balance far above the amount: low_balance_high_amount must not fire.
            balance = max(account.balance_cents, cents * 3)
            if archetype == "large_amount_abroad":  # online, from a foreign merchant
                point = None
                record = self._transaction(
                    account,
                    timestamp,
                    cents,
                    channel="online",
                    point=None,
                    destination=self._foreign_country(account.country),
                    balance_cents=balance,
                )
            else:
                point = self._home_point(account)
                record = self._transaction(
                    account,
                    timestamp,
                    cents,
                    channel="card_present",
                    point=point,
                    balance_cents=balance,
                )
        elif archetype == "cross_border":
            cents = self._ordinary_cents()
            point = None
            record = self._transaction(
                account,
                timestamp,
                cents,
                channel="online",
                point=None,
                destination=self._foreign_country(account.country),
            )
        elif archetype == "low_balance":
            cents = rng.randrange(100_000, 1_000_001)  # 1000.00 .. 10000.00
            # amount > 0.9 * balance  <=>  balance < amount / 0.9; keep it well inside.
            balance = rng.randrange(cents // 2, cents + 1)  # 0.5x .. 1.0x the amount
            point = self._home_point(account)
            record = self._transaction(
                account,
                timestamp,
                cents,
                channel="card_present",
                point=point,
                balance_cents=balance,
            )
        elif archetype == "account_takeover":
            if step == 0:  # the owner, at home, with the usual device
                cents = self._ordinary_cents()
                point = self._home_point(account)
                record = self._transaction(
                    account, timestamp, cents, channel="card_present", point=point
                )
            else:  # the taker, online from a device the account never used
                cents = rng.randrange(100_000, 1_000_000)  # 1000.00 .. 9999.99
                balance = max(account.balance_cents, cents * 3)
                point = None
                destination = self._foreign_country(account.country) if rng.random() < 0.7 else None
                record = self._transaction(
                    account,
                    timestamp,
                    cents,
                    channel="online",
                    point=None,
                    device_id=f"dev-new-{rng.getrandbits(48):012x}",
                    destination=destination,
                    balance_cents=balance,
                )
        elif archetype == "card_testing":
            cents = rng.choice((rng.randrange(1, 501), 100, 500))  # 0.01 .. 5.00
            point = None
            record = self._transaction(
                account,
                timestamp,
                cents,
                channel="online",
                point=None,
                device_id=campaign.params["device_id"],
            )
        elif archetype == "velocity_attack":
            cents = rng.randrange(1_000, 90_001)  # 10.00 .. 900.00
            point = None
            record = self._transaction(account, timestamp, cents, channel="online", point=None)
        else:  # impossible_travel
            cents = self._ordinary_cents()
            if step == 0:
                point = self._home_point(account)
                record = self._transaction(
                    account, timestamp, cents, channel="card_present", point=point
                )
            else:
                country, point = self._far_city(account)
                first = campaign.history[0]
                gap_ms = now_ms - first.ts_ms
                assert first.point is not None
                if gap_ms > 0:
                    speed = haversine_km(first.point, point) / (gap_ms / 3_600_000)
                    if speed <= TRAVEL_SAFE_KMH:
                        point = None  # too slow a clock: do not let floats decide
                record = self._transaction(
                    account,
                    timestamp,
                    cents,
                    channel="card_present" if point is not None else "online",
                    point=point,
                    destination=country,
                )
        return record, cents, point, balance

    def _campaign_step(
        self, campaign: _Campaign, now_ms: int, timestamp: str
    ) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        if campaign.archetype in HARD_ARCHETYPES:
            return self._hard_step(campaign, now_ms, timestamp)
        step = len(campaign.history)
        record, cents, point, balance = self._campaign_record(campaign, now_ms, timestamp)
        seen = _Seen(now_ms, cents, point, record.get("device_id"))
        expected = rules_fired(
            campaign.history,
            seen,
            origin=record["origin_country"],
            destination=record["destination_country"],
            balance_cents=balance,
        )
        campaign.history.append(seen)
        if len(campaign.history) >= campaign.total:
            self._campaigns.remove(campaign)
        else:
            campaign.not_before_ms = now_ms + STEP_GAP_MS
            campaign.waiting_since = self._emitted
        prefix = "fraud" if expected else "setup"
        if self.realistic:
            # The owner's own first step of a takeover or a journey is legitimate.
            owner = step == 0 and campaign.archetype in ("account_takeover", "impossible_travel")
            record["fraud"] = not owner
            record["fraud_archetype"] = None if owner else campaign.archetype
        return f"{prefix}:{campaign.archetype}", expected, record

    # -- invalid records ----------------------------------------------------------------------

    def _invalid(self, timestamp: str) -> tuple[str, str, bytes]:
        rng = self._rng
        kind = rng.choice(INVALID_KINDS)
        account = self._account(rng.randrange(1, self.accounts + 1))
        record = self._transaction(
            account,
            timestamp,
            self._ordinary_cents(),
            channel="card_present",
            point=self._home_point(account),
        )
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

    # -- public -------------------------------------------------------------------------------

    def next_record(self) -> SyntheticRecord:
        now_ms = self._clock_ms()
        timestamp = format_timestamp(_EPOCH + now_ms * _MS)
        draw = self._rng.random()
        if draw < self.invalid_ratio:
            kind, account_id, data = self._invalid(timestamp)
            result = SyntheticRecord(data, account_id, f"invalid:{kind}", ())
        else:
            campaign = self._ready_campaign(now_ms)
            # The same draw, rescaled to the valid share: uniform on [0, 1).
            if (
                campaign is None
                and (draw - self.invalid_ratio) / (1.0 - self.invalid_ratio) < self._campaign_rate
            ):
                campaign = self._start_campaign(now_ms)
            if campaign is not None:
                kind, expected, record = self._campaign_step(campaign, now_ms, timestamp)
            else:
                kind, expected, record = self._ordinary(now_ms, timestamp)
            record["expected_rules"] = list(expected)
            result = SyntheticRecord(
                json.dumps(record, separators=(",", ":")).encode(),
                record["account_id"],
                kind,
                expected,
            )
        self._emitted += 1
        self.counts[result.kind] = self.counts.get(result.kind, 0) + 1
        return result

    def records(self, count: int) -> Iterator[SyntheticRecord]:
        for _ in range(count):
            yield self.next_record()

    @property
    def fraud_count(self) -> int:
        """Records labelled with at least one rule by a fraud archetype."""
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
