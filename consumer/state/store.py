"""Per-account history in Redis that makes decisions replay-deterministic.

Why it is shaped like this:
- **Positions, not counters.** Every stored fact carries the stream position (sequence number,
  sub-sequence number) of the record that produced it. A transaction sees only facts from
  positions before its own, so a replay after a crash (records since the last checkpoint come
  again, while Redis already holds their effects) gives exactly the first pass's decisions.
  Writes are idempotent: sorted-set members and SET NX values derived from the record itself,
  never a bare INCR.
- **One account, one slot.** Every key of an account has the account id as its hash tag
  (`fs:acct:{<id>}:...`) and every key of a transaction id its own (`fs:txn:{<id>}...`), so
  each command touches one slot and the same code runs on Redis Cluster / ElastiCache
  cluster mode.
- **A constant number of round trips per batch.** `load` reads everything the batch needs in
  one pipeline; `save` writes everything in another; nothing in between touches the network.
- **Bounded memory.** Loads read recent transactions back to the longest rule look-back (the
  state horizon) plus a lateness allowance; the key expires that long after the account's last
  write and holds at most `max_entries`. Devices, countries and "has history" live
  `memory_ttl_s`; transaction ids the 24 h duplicate window. A cached account's expiries are
  set again only every eighth of the shorter time (and whenever a key is created), each that
  much longer, so every key lives at least its time after the last write and at most an eighth
  more; the set is capped only when it may hold more than `max_entries` (an upper bound of
  its size is kept), so a busy account's save is its ZADD alone, not seven commands.

Keys:
  fs:acct:{A}:recent     ZSET  score = event time, member =
                               "seq.sub|event_time|amount|lat|lon" (no destination_country) or
                               "seq.sub|event_time|amount|lat|lon|country" (the country last, so
                               it may hold any character)
  fs:acct:{A}:devices    HASH  device id -> position of its first use
  fs:acct:{A}:countries  HASH  destination_country -> position of its first use
  fs:acct:{A}:first      STR   position of the account's first transaction
  fs:acct:{A}:days       HASH  UTC day number -> DayTotals.encode() ("count|sum|sum of squares"):
                               the account's long-horizon profile, at most ACCOUNT_DAYS days
  fs:txn:{T}             STR   position of the first valid record with this transaction id,
                               with "|A" appended once its alert was accepted by SNS
  fs:merch:{M}:days      HASH  "<day>:<shard id>" -> "<count>|<seq>.<sub>": each shard's count
                               of the merchant's transactions that day and the position of the
                               last one counted (consumer/state/profiles.py)
  fs:merch:{M}:labels    HASH  transaction id -> LabelMark.encode(); read here, written by the
                               labels' ingestion

Profiles (docs/profiles.md): the account's day totals are loaded and saved with the account
(the same script calls, the same slot); a record adds to its day only when it adds its member,
so a replay counts nothing twice within the load horizon. Merchants are cached (MERCHANT_CACHE,
their settled days while the model's delay keeps the reads on them; their labels for
merchant_labels_refresh_s), read from Redis otherwise, and saved per shard with positions, so a
replay counts nothing twice. With `StateConfig.profiles` off none of this is read or written
(the scripts skip the days key: four keys an account) and histories carry no profile.

A five-field member (a transaction without a destination_country, or one stored by a version without
countries) reads as "country unknown"; a transaction without a country is still written in that
form, which every version reads. A member is identified by its position, so a replay never stores
one record twice in two formats. Upgrading a running stream from the store without countries:
docs/rules-as-data.md#countries-in-the-state-store.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from sys import intern
from typing import Any

from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from consumer.infra.metrics import METRICS
from consumer.records import Position, Transaction
from consumer.rules.history import AccountHistory, HistoryEntry, in_time_order
from consumer.rules.profile import (
    ACCOUNT_DAYS,
    DAY_S,
    MERCHANT_DAYS,
    NO_DAY,
    DayTotals,
    Profile,
    day_of,
)
from consumer.settings.config import StateConfig
from consumer.state.profiles import (
    BEFORE_ANY_DAY,
    MERCHANT_SETTLE_DAYS,
    MerchantState,
    OwnDay,
    decode_labels,
    merchant_days_key,
    merchant_from_redis,
    merchant_labels_key,
)

DEFAULT_SHARD_ID = "shardId-000000000000"
"""The shard id a store counts its merchant transactions under when none is given (tests and
benchmarks; the worker passes its own shard's)."""

MERCHANT_CACHE = 10_000
"""Merchants a store keeps between batches (least recently used leave first). A cached merchant
of the benchmark's shape (one day, no labels) holds about 1.0 KB (tracemalloc), so this is
about 10 MB at most: 50,000 (all of the benchmark's uniformly drawn merchants) took the
processor with a model from 236 to 269 MB peak RSS (benchmark, 2026-12-07), over the 250 MB a
processor may use, for hits the benchmark's uniform draw hardly gives; real traffic
concentrates on far fewer. A merchant
holds at most MERCHANT_DAYS days per shard and its labels (bounded by their writer)."""


def encode_position(position: Position) -> str:
    return f"{position[0]}.{position[1]}"


def decode_position(text: str | bytes) -> Position:
    if isinstance(text, bytes):
        text = text.decode()
    sequence, _, sub = text.partition(".")
    return int(sequence), int(sub or 0)


def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


def _timed_execute(pipe: Any, metric: str) -> Any:
    """Send a pipeline; its round trip (when it has commands) goes to the RedisLatency metric."""
    if not len(pipe):
        return pipe.execute()
    started = time.monotonic()
    replies = pipe.execute()
    METRICS.observe_ms(metric, (time.monotonic() - started) * 1000)
    return replies


def _account_key(account_id: str, kind: str) -> str:
    return f"fs:acct:{{{account_id}}}:{kind}"


def _txn_key(transaction_id: str) -> str:
    return f"fs:txn:{{{transaction_id}}}"


class _Stored(HistoryEntry, frozen=True, gc=False, kw_only=True):
    """An entry of the recent set: the history entry the rules read (itself: no copy per
    judged record), plus its score. Not its member text: only a batch's new members are sent,
    and the cache holds up to FRAUD_STATE_CACHE_ENTRIES of these (the saving:
    docs/benchmarks.md#state-store)."""

    score: float  # the event time as the sorted set scores it: what pruning compares


def _encode_entry(position: Position, txn: Transaction) -> str:
    # `!s`: str() of a Decimal, cheaper than the format() a bare f-string field calls
    # (docs/benchmarks.md#state-store).
    lat = "" if txn.latitude is None else repr(txn.latitude)
    lon = "" if txn.longitude is None else repr(txn.longitude)
    member = f"{position[0]}.{position[1]}|{txn.event_time!s}|{txn.amount!s}|{lat}|{lon}"
    country = txn.destination_country
    # Without a country the member keeps the five-field form older workers also read.
    return member if country is None else f"{member}|{country}"


@lru_cache(maxsize=20_000)
def _decode_entry(member: str | bytes) -> _Stored:
    """Decoding is pure, and the same members come back batch after batch: memoised.
    Five fields (no country, or written before countries were stored) or six."""
    text = member.decode() if isinstance(member, bytes) else member
    pos, event_time, amount, lat, lon, *country = text.split("|", 5)
    return _Stored(
        decode_position(pos),
        Decimal(event_time),
        Decimal(amount),
        float(lat) if lat else None,
        float(lon) if lon else None,
        intern(country[0]) if country else None,
        score=float(event_time),
    )


def _one_per_position(recent: list[_Stored]) -> list[_Stored]:
    """Sorted entries, one per position: a record stored by an older worker and again by this
    one (a replay across an upgrade) keeps its newer, six-field form."""
    kept: list[_Stored] = []
    for stored in recent:
        if kept and kept[-1].position == stored.position:
            if stored.country is not None:
                kept[-1] = stored
            continue
        kept.append(stored)
    return kept


@dataclass(slots=True)
class _Wanted:
    """What a batch asks about one account: entries from `oldest` on, these devices and
    countries."""

    oldest: float = float("inf")
    devices: set[str] = field(default_factory=set)
    countries: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Account:
    recent: list[_Stored]
    devices: dict[str, Position]
    first: Position | None
    # Its five Redis keys (_account_keys), built once rather than at every save.
    keys: list[str]
    # Its day totals (fs:acct:{A}:days), as Redis holds them plus what this process added.
    days: dict[int, DayTotals] = field(default_factory=dict)
    # Days whose totals changed, and days forgotten (older than ACCOUNT_DAYS before the newest),
    # since the last save.
    new_days: set[int] = field(default_factory=set)
    dropped_days: set[int] = field(default_factory=set)
    # Countries whose first use is known (also what the cache can answer for: every country a
    # batch asks about is added with its transaction, so no separate "checked" set).
    countries: dict[str, Position] = field(default_factory=dict)
    # Positions of `recent`: a record is stored once, whatever its member's format.
    positions: set[Position] = field(default_factory=set)
    new_members: dict[str, float] = field(default_factory=dict)
    new_devices: dict[str, Position] = field(default_factory=dict)
    new_countries: dict[str, Position] = field(default_factory=dict)
    # Devices whose first use is known here, or known to be absent from Redis.
    checked: set[str] = field(default_factory=set)
    last_used: float = 0.0
    # The smallest score in `recent`, kept up to date, so that the usual prune (nothing to
    # forget) costs one comparison.
    oldest_score: float = float("inf")
    # len(recent) when the store last counted it into the cache's entry total.
    counted: int = 0
    # `recent` (in stream order) also has never-decreasing event times, as in-order traffic
    # gives it: the rules then read it newest first and stop at their windows
    # (AccountHistory.ascending). Exact (Decimal) checks; re-checked when entries leave.
    in_time_order: bool = True
    # When (time.monotonic) this process last set the expiry of the account's keys: the saves
    # between refreshes send only what changes the keys' content.
    refreshed_at: float = float("-inf")
    # At least the size of the recent set in Redis (its size at load, plus every member sent
    # since): while it is within max_entries the save need not cap the set.
    stored_at_most: int = 0

    def prune(self, min_score: float, max_entries: int) -> None:
        """Forget entries older than any decision can use, and beyond the newest max_entries
        by event time (the cap save applies in Redis)."""
        recent = self.recent
        if len(recent) <= max_entries and self.oldest_score >= min_score:
            return  # the common case: nothing to forget
        keep = [s for s in recent if s.score >= min_score]
        if len(keep) > max_entries:
            newest = sorted(keep, key=lambda s: s.score)[-max_entries:]
            keep = sorted(newest, key=lambda s: s.position)
        self.oldest_score = min((s.score for s in keep), default=float("inf"))
        if len(keep) != len(self.recent):
            self.recent = keep
            self.positions = {s.position for s in keep}
            if not self.in_time_order:
                self.in_time_order = in_time_order(keep)


class BatchView:
    """One batch's slice of the state, updated in memory as its records are judged in order."""

    def __init__(
        self,
        accounts: dict[str, _Account],
        seen: dict[str, Position | None],
        alerted: set[str],
        merchants: dict[str, MerchantState] | None = None,
        profiles: bool = True,
    ) -> None:
        self._accounts = accounts
        self._profiles = profiles
        self._merchants = merchants if merchants is not None else {}
        self._seen = seen
        self._new_seen: dict[str, Position] = {}
        self._alerted = alerted

    @property
    def accounts(self) -> dict[str, _Account]:
        return self._accounts

    @property
    def merchants(self) -> dict[str, MerchantState]:
        return self._merchants

    @property
    def new_seen(self) -> dict[str, Position]:
        return self._new_seen

    def first_seen(self, transaction_id: str) -> Position | None:
        return self._seen.get(transaction_id)

    def is_duplicate(self, txn: Transaction, position: Position) -> bool:
        """Seen before under another position: a producer retry, not a replay. Only `add`
        records a sighting, so a record whose judging failed (dead-lettered as `internal`)
        enters no state and a later copy of it is judged."""
        first = self._seen.get(txn.transaction_id)
        return first is not None and first != position

    def already_alerted(self, transaction_id: str) -> bool:
        return transaction_id in self._alerted

    def history(self, txn: Transaction, position: Position) -> AccountHistory:
        """What `txn` may see: the account's facts from strictly earlier positions."""
        account = self._accounts[txn.account_id]
        stored = account.recent  # in stream order
        if not stored or stored[-1].position < position:  # usual: all of it came earlier
            recent = list(stored)
        else:  # a replay: what came later is hidden
            recent = [s for s in stored if s.position < position]
        device_first = account.devices.get(txn.device_id) if txn.device_id is not None else None
        country = txn.destination_country
        country_first = account.countries.get(country) if country is not None else None
        merchant_id = txn.merchant_id
        merchant = self._merchants.get(merchant_id) if merchant_id is not None else None
        return AccountHistory(
            recent=recent,
            device_seen_before=device_first is not None and device_first < position,
            has_earlier=account.first is not None and account.first < position,
            country_seen_before=country_first is not None and country_first < position,
            ascending=account.in_time_order,
            # The live dicts, not copies: valid until the next `add`, as the view promises.
            profile=None
            if not self._profiles
            else Profile(account.days)
            if merchant is None
            else Profile(account.days, merchant.days, merchant.labels),
        )

    def add(self, txn: Transaction, position: Position) -> None:
        """Record a judged transaction so later records of the batch see it, and its first
        sighting for the duplicate check."""
        if self._seen.get(txn.transaction_id) is None:  # loaded as None: not seen in Redis
            self._seen[txn.transaction_id] = position
            self._new_seen[txn.transaction_id] = position
        account = self._accounts[txn.account_id]
        if position not in account.positions:
            account.positions.add(position)
            member = _encode_entry(position, txn)
            score = float(txn.event_time)
            country = txn.destination_country
            account.recent.append(
                _Stored(
                    position,
                    txn.event_time,
                    txn.amount,
                    txn.latitude,
                    txn.longitude,
                    None if country is None else intern(country),  # one string per country
                    score=score,
                )
            )
            account.oldest_score = min(account.oldest_score, score)
            recent = account.recent
            if len(recent) > 1 and recent[-2].position > position:
                recent.sort(key=lambda s: s.position)  # only after a replayed prefix
                account.in_time_order = in_time_order(recent)
            elif account.in_time_order and len(recent) > 1:
                account.in_time_order = recent[-2].event_time <= txn.event_time
            account.new_members[member] = score
            if self._profiles:
                # Its day's totals, under the same condition as its member: a record already
                # among the loaded positions (a replay) is not counted twice.
                day = _day(txn.event_time)
                _add_to_days(account, day, txn.amount)
            else:
                day = None
        else:
            day = None
        merchant_id = txn.merchant_id
        if merchant_id is not None and self._profiles:
            # Counted unless this shard counted its day up to its position (a replay).
            self._merchants[merchant_id].count(
                _day(txn.event_time) if day is None else day, position
            )
        if txn.device_id is not None:
            account.checked.add(txn.device_id)
            known = account.devices.get(txn.device_id)
            if known is None or position < known:
                account.devices[txn.device_id] = position
                account.new_devices[txn.device_id] = position
        country = txn.destination_country
        if country is not None:
            known = account.countries.get(country)
            if known is None or position < known:
                account.countries[country] = position
                account.new_countries[country] = position
        if account.first is None or position < account.first:
            account.first = position


def _day(event_time: Decimal) -> int:
    """day_of, without its Decimal arithmetic for the usual (non-negative) time: there
    truncation is the floor, and whole seconds divide as ints."""
    seconds = int(event_time)
    return seconds // DAY_S if seconds >= 0 else day_of(event_time)


def _add_to_days(account: _Account, day: int, amount: Decimal) -> None:
    """Add an amount to the account's `day`, then forget days more than ACCOUNT_DAYS before
    the newest.

    One day more than the offline history keeps (it drops the day ACCOUNT_DAYS back): a
    record of yesterday replayed after the account's first record of today (a replay across
    midnight) still reads the 30 days it read the first time. In-order records read the
    same either way."""
    days = account.days
    days[day] = days.get(day, NO_DAY).plus(amount)
    account.new_days.add(day)
    if len(days) > _KEPT_ACCOUNT_DAYS:
        bound = max(days) - _KEPT_ACCOUNT_DAYS
        for old in [d for d in days if d <= bound]:
            del days[old]
            account.new_days.discard(old)
            account.dropped_days.add(old)


# Days of totals an account keeps: ACCOUNT_DAYS back from its newest day, and that day.
_KEPT_ACCOUNT_DAYS = ACCOUNT_DAYS + 1


@lru_cache(maxsize=50_000)
def _decode_day(raw: str | bytes) -> DayTotals:
    """An account's past days come back unchanged at every load: decoding is memoised."""
    return DayTotals.decode(raw)


def _decode_days(flat: Sequence[bytes]) -> dict[int, DayTotals]:
    """HGETALL's flat reply of an account's day totals."""
    return {int(flat[i]): _decode_day(flat[i + 1]) for i in range(0, len(flat), 2)}


# Scripts over any number of accounts (five keys each, as _account_keys, or four without
# profiles: `stride`) and merchants (two keys each to load, or the labels key alone for a cached
# merchant whose days still hold; one to save). On a single Redis one call carries the whole
# batch, so the client packs one command instead of thousands; on a cluster each call carries
# one account or one merchant, whose keys share a hash slot. Either way the work runs inside
# Redis.
_LOAD = """
local out = {}
local accounts, stride, full = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
local function firsts(key)
  local n = tonumber(ARGV[a])
  local found = {}
  if n > 0 then found = redis.call('HMGET', key, unpack(ARGV, a + 1, a + n)) end
  a = a + n + 1
  return found
end
for k = 1, accounts * stride, stride do
  local recent = redis.call('ZRANGEBYSCORE', KEYS[k], ARGV[a], '+inf')
  a = a + 1
  local devices = firsts(KEYS[k + 1])
  local countries = firsts(KEYS[k + 2])
  local first = redis.call('GET', KEYS[k + 3])
  local days = {}
  if stride == 5 then days = redis.call('HGETALL', KEYS[k + 4]) end
  out[#out + 1] = {recent, devices, countries, first, redis.call('ZCARD', KEYS[k]), days}
end
local m = accounts * stride
for k = m + 1, m + 2 * full, 2 do
  out[#out + 1] = {redis.call('HGETALL', KEYS[k]), redis.call('HGETALL', KEYS[k + 1])}
end
for k = m + 2 * full + 1, #KEYS do
  out[#out + 1] = {redis.call('HGETALL', KEYS[k])}
end
return out
"""

_SAVE = """
local keep_ttl, memory_ttl, max_entries = ARGV[1], ARGV[2], tonumber(ARGV[3])
local accounts, dedup_ttl = tonumber(ARGV[4]), ARGV[5]
local days_ttl, merchants, merchant_ttl = ARGV[6], tonumber(ARGV[7]), ARGV[8]
local merchant_days, stride = tonumber(ARGV[9]), tonumber(ARGV[10])
local a = 11
local function firsts(key, n, refresh)
  for _ = 1, n do
    redis.call('HSETNX', key, ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  -- a no-op on a key that does not exist
  if refresh or n > 0 then redis.call('EXPIRE', key, memory_ttl) end
end
-- Stream positions "seq.sub": sequence numbers have up to 56 digits, beyond a Lua number's
-- exactness, so they compare as decimal strings (no leading zeros): by length, then by text.
local function later(new, old)
  local ns, nsub = string.match(new, '^(%d+)%.(%d+)$')
  local os, osub = string.match(old, '^(%d+)%.(%d+)$')
  if #ns ~= #os then return #ns > #os end
  if ns ~= os then return ns > os end
  return tonumber(nsub) > tonumber(osub)
end
for k = 1, accounts * stride, stride do
  local first, refresh, members = ARGV[a], ARGV[a + 1] == '1', tonumber(ARGV[a + 2])
  local devices, countries, cap = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
  local days_set, days_del = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
  a = a + 8
  local last = a + 2 * members - 1
  while a <= last do
    local stop = math.min(last, a + 999)
    redis.call('ZADD', KEYS[k], unpack(ARGV, a, stop))
    a = stop + 1
  end
  if cap == '1' then redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -max_entries - 1) end
  if refresh then redis.call('EXPIRE', KEYS[k], keep_ttl) end
  firsts(KEYS[k + 1], devices, refresh)
  firsts(KEYS[k + 2], countries, refresh)
  if first ~= '' then redis.call('SET', KEYS[k + 3], first, 'NX', 'EX', memory_ttl) end
  if refresh then redis.call('EXPIRE', KEYS[k + 3], memory_ttl) end
  -- Day totals: the changed days first, then the forgotten ones (the key never empties on
  -- the way, so it keeps its expiry); a new day (or a refresh) sets the expiry again.
  -- (Without profiles: four keys, and no days to set or delete.)
  local created = 0
  if days_set > 0 then
    created = redis.call('HSET', KEYS[k + 4], unpack(ARGV, a, a + 2 * days_set - 1))
    a = a + 2 * days_set
  end
  if days_del > 0 then
    redis.call('HDEL', KEYS[k + 4], unpack(ARGV, a, a + days_del - 1))
    a = a + days_del
  end
  if stride == 5 and (refresh or created > 0) then
    redis.call('EXPIRE', KEYS[k + 4], days_ttl)
  end
end
-- Merchants: this shard's "<day>:<shard>" -> "<count>|<position>" fields, each replaced only
-- by a greater position; a new field trims the days too old to read, and every write sets the
-- expiry again.
local m_end = accounts * stride + merchants
for k = accounts * stride + 1, m_end do
  local n = tonumber(ARGV[a])
  a = a + 1
  local created = false
  for _ = 1, n do
    local name, value = ARGV[a], ARGV[a + 1]
    a = a + 2
    local old = redis.call('HGET', KEYS[k], name)
    if not old then
      redis.call('HSET', KEYS[k], name, value)
      created = true
    elseif later(string.match(value, '|(.*)$'), string.match(old, '|(.*)$')) then
      redis.call('HSET', KEYS[k], name, value)
    end
  end
  if created then
    local names = redis.call('HKEYS', KEYS[k])
    local newest = nil
    for _, name in ipairs(names) do
      local day = tonumber(string.match(name, '^(-?%d+):'))
      if newest == nil or day > newest then newest = day end
    end
    for _, name in ipairs(names) do
      if tonumber(string.match(name, '^(-?%d+):')) <= newest - merchant_days then
        redis.call('HDEL', KEYS[k], name)
      end
    end
  end
  redis.call('EXPIRE', KEYS[k], merchant_ttl)
end
for k = m_end + 1, #KEYS do
  redis.call('SET', KEYS[k], ARGV[a], 'NX', 'EX', dedup_ttl)
  a = a + 1
end
return 1
"""

_ALERTED = "|A"
# Expiries of the day totals: a day is read for LONGEST_WINDOW_DAYS after it, kept one more.
_ACCOUNT_DAYS_TTL = (ACCOUNT_DAYS + 1) * DAY_S  # the newest day lives until it is trimmed
_MERCHANT_DAYS_TTL = (MERCHANT_DAYS + 1) * DAY_S


@dataclass(frozen=True, slots=True)
class PreparedSave:
    """A batch's state writes, ready to send: save-script calls (keys, args) and, on a cluster,
    the transaction ids' first sightings (each its own slot). `accounts` and `seen` say what it
    writes, so the next batch's load can tell whether it must wait for it."""

    script_calls: list[tuple[list[str], list[Any]]]
    txn_writes: list[tuple[str, str]]
    accounts: frozenset[str] = frozenset()
    seen: dict[str, Position] = field(default_factory=dict)
    # Per merchant, this shard's days it writes (count, last position): a load meanwhile knows
    # what Redis will hold once it lands, so it need not wait for it.
    merchants: dict[str, dict[int, OwnDay]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SaveInFlight:
    """The previous batch's save while it is still being written, and how to wait for it."""

    prepared: PreparedSave
    wait: Callable[[], None]


class AccountStateStore:
    """Loads and saves the state a batch needs, each in one pipelined round trip.

    On a single Redis (ElastiCache without cluster mode) a batch is one script call and one MGET
    to load, and one script call to save. On a cluster: one script call per account and one
    command per transaction id each way, still pipelined in one round trip per direction.
    """

    def __init__(
        self,
        redis: Any,
        config: StateConfig,
        horizon_s: Decimal,
        shard_id: str = DEFAULT_SHARD_ID,
        merchant_days_read_back: int | Callable[[], int] = 0,
        clock: Callable[[], float] = time.monotonic,
        cache: bool = True,
    ) -> None:
        """`merchant_days_read_back`: the smallest day offset back from a transaction's day at
        which the features read a merchant's counts (the model's `label_delay_days`), or a
        callable giving it for each batch (a model that may be reloaded); 0 reads today's, so
        cached counts are never reused. `clock`: when a merchant's labels were read (tests
        move it). `cache` False: nothing is kept between loads, every load reads Redis whole:
        for a reader beside the workers (the scoring API, consumer/api), which others write
        while it reads, so that no account or merchant is answered from memory."""
        self._redis = redis
        self._profiles = config.profiles
        # Four keys an account without profiles: the days key is neither passed nor touched.
        self._stride = 5 if config.profiles else 4
        self._read_back = merchant_days_read_back
        self._clock = clock
        self._labels_refresh_s = config.merchant_labels_refresh_s
        self._merchants: OrderedDict[str, MerchantState] = OrderedDict()
        # Merchant counts are kept per shard (consumer/state/profiles.py): each shard's own
        # field, so shards never write the same one.
        self._shard_id = shard_id
        self._config = config
        self._keep_s = float(horizon_s) + config.lateness_s
        self._cluster = isinstance(redis, RedisCluster)
        self._load_sha = _sha1(_LOAD)
        self._cache: OrderedDict[str, _Account] = OrderedDict()
        self._cache_size = config.cache_accounts if config.cache_entries and cache else 0
        self._merchant_cache = cache
        self._cache_entries = config.cache_entries
        self._cached_entries = 0  # history entries the cached accounts hold, as last counted
        # Well inside the keys' expiry, so Redis cannot have forgotten what the cache holds.
        self._cache_idle_s = min(self._keep_s, config.memory_ttl_s) / 2
        self._save_sha = _sha1(_SAVE)
        # A cached account's keys get their expiry set again at most this often (and whenever
        # a key is created); the expiry each save sets is longer by as much, so every key still
        # lives at least its full time after the account's last write.
        self._refresh_s = min(self._keep_s, config.memory_ttl_s) / 8

    def _send(self, queue: Callable[[Any], None], metric: str) -> list[Any]:
        """One pipelined round trip of what `queue` puts on a pipeline.

        The scripts go by EVALSHA alone (redis-py's Script objects would first ask SCRIPT
        EXISTS, one more round trip per pipeline); when Redis does not know them (first use, a
        restart, a failover) they are loaded and the round trip is repeated once. Safe: a
        pipeline that failed on NOSCRIPT ran no script, and every write is idempotent anyway.
        """
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            queue(pipe)
            try:
                replies: list[Any] = _timed_execute(pipe, metric)
                return replies
            except NoScriptError:
                if attempt == 2:
                    raise
                self._redis.script_load(_LOAD)
                self._redis.script_load(_SAVE)
        raise AssertionError("unreachable")

    def _groups(self, account_ids: Sequence[str]) -> list[list[str]]:
        """Accounts (or merchants) per script call: all of them, or one per call on a cluster."""
        if self._cluster:
            return [[account_id] for account_id in account_ids]
        return [list(account_ids)] if account_ids else []

    def _load_groups(
        self,
        account_ids: Sequence[str],
        merchant_ids: Sequence[str],
        labels_only: Sequence[str] = (),
    ) -> list[tuple[list[str], list[str], list[str]]]:
        """(accounts, merchants, merchants whose labels alone are read) per script call: all
        in one, or one of any per call on a cluster (each call's keys in one slot)."""
        if self._cluster:
            return (
                [([account_id], [], []) for account_id in account_ids]
                + [([], [merchant_id], []) for merchant_id in merchant_ids]
                + [([], [], [merchant_id]) for merchant_id in labels_only]
            )
        if account_ids or merchant_ids or labels_only:
            return [(list(account_ids), list(merchant_ids), list(labels_only))]
        return []

    def _cached_merchants(
        self, items: Sequence[tuple[Position, Transaction]], merchant_ids: list[str]
    ) -> tuple[dict[str, MerchantState], list[str], list[str], int]:
        """The batch's merchants the cache answers for, and those it does not: to load whole,
        and cached ones whose labels are due to be read again. Also the day a merchant loaded
        now is trusted before: the batch's oldest, less MERCHANT_SETTLE_DAYS (none when the
        reads reach today).

        A cached merchant's days are used while every record of the batch reads only days
        before its `trusted_before`: the features read days up to `day - read_back`.
        """
        cache = self._merchants
        if not self._merchant_cache:
            return {}, merchant_ids, [], BEFORE_ANY_DAY
        read_back = self._read_back() if callable(self._read_back) else self._read_back
        # A day never decreases with the event time: the batch's newest and oldest days are
        # those of its newest and oldest times (two conversions a batch, not one a record).
        times = [txn.event_time for _, txn in items] if read_back > 0 else []
        # Reads reach up to the newest day less the delay; 0: today, never from the cache.
        reach = _day(max(times)) - read_back if times else None
        hits: dict[str, MerchantState] = {}
        to_load: list[str] = []
        labels_due: list[str] = []
        now = self._clock()
        refresh_s = self._labels_refresh_s
        for merchant_id in merchant_ids:
            merchant = cache.get(merchant_id)
            if merchant is None or reach is None or reach >= merchant.trusted_before:
                to_load.append(merchant_id)
                continue
            cache.move_to_end(merchant_id)
            hits[merchant_id] = merchant
            if now - merchant.labels_at >= refresh_s:
                labels_due.append(merchant_id)
        trusted_before = _day(min(times)) - MERCHANT_SETTLE_DAYS if times else BEFORE_ANY_DAY
        return hits, to_load, labels_due, trusted_before

    def load(
        self, items: Sequence[tuple[Position, Transaction]], in_flight: SaveInFlight | None = None
    ) -> BatchView:
        """The state `items` need: cached accounts from memory, the others and every transaction
        id from Redis in one round trip.

        A previous batch's save may still be in flight (`in_flight`): the load waits for it only
        when it must read one of the accounts that save writes (the cache answers for those
        unless it let them go); the transaction ids it writes are known here already, so a
        record repeating one is a duplicate whichever lands first in Redis.
        """
        wanted = self._wanted(items)
        loaded: dict[str, _Account] = self._from_cache(wanted)
        asked = {
            account_id: (sorted(want.devices), sorted(want.countries))
            for account_id, want in wanted.items()
            if account_id not in loaded
        }
        txn_ids = list(dict.fromkeys(txn.transaction_id for _, txn in items))
        profiles = self._profiles
        stride = self._stride
        merchants: dict[str, MerchantState] = {}
        merchant_ids: list[str] = []
        labels_due: list[str] = []
        trusted_before = BEFORE_ANY_DAY
        if profiles:
            merchants, merchant_ids, labels_due, trusted_before = self._cached_merchants(
                items,
                list(
                    dict.fromkeys(
                        txn.merchant_id for _, txn in items if txn.merchant_id is not None
                    )
                ),
            )
        groups = self._load_groups(list(asked), merchant_ids, labels_due)
        if in_flight is not None and not in_flight.prepared.accounts.isdisjoint(asked):
            in_flight.wait()

        def queue(pipe: Any) -> None:
            for group, merchant_group, labels_group in groups:
                keys: list[str] = []
                args: list[Any] = [len(group), stride, len(merchant_group)]
                for account_id in group:
                    devices, countries = asked[account_id]
                    keys += _account_keys(account_id, stride)
                    args += (wanted[account_id].oldest - self._keep_s - 1, len(devices), *devices)
                    args += (len(countries), *countries)
                for merchant_id in merchant_group:
                    keys += (merchant_days_key(merchant_id), merchant_labels_key(merchant_id))
                keys += [merchant_labels_key(merchant_id) for merchant_id in labels_group]
                pipe.execute_command("EVALSHA", self._load_sha, len(keys), *keys, *args)
            if self._cluster:
                for txn_id in txn_ids:
                    pipe.execute_command("GET", _txn_key(txn_id))
            elif txn_ids:
                pipe.execute_command("MGET", *[_txn_key(txn_id) for txn_id in txn_ids])

        replies = self._send(queue, "redis.load")

        per_call = [reply for group_reply in replies[: len(groups)] for reply in group_reply]
        # Accounts' replies first, then merchants' whole, then labels alone (in one call or one
        # call each).
        per_account = per_call[: len(asked)]
        per_merchant = per_call[len(asked) : len(asked) + len(merchant_ids)]
        per_labels = per_call[len(asked) + len(merchant_ids) :]
        if merchant_ids or labels_due:
            now = self._clock()
            pending = in_flight.prepared.merchants if in_flight is not None else {}
            for merchant_id, (days_flat, labels_flat) in zip(
                merchant_ids, per_merchant, strict=True
            ):
                merchant = merchant_from_redis(
                    days_flat, labels_flat, self._shard_id, pending.get(merchant_id)
                )
                merchant.trusted_before = trusted_before
                merchant.labels_at = now
                merchants[merchant_id] = merchant
                self._remember_merchant(merchant_id, merchant)
            for merchant_id, (labels_flat,) in zip(labels_due, per_labels, strict=True):
                merchant = merchants[merchant_id]
                merchant.labels = decode_labels(labels_flat)
                merchant.labels_at = now
        for account_id, reply in zip(asked, per_account, strict=True):
            members, device_firsts, country_firsts, first_raw, stored_count, days_flat = reply
            devices, countries = asked[account_id]
            recent = [_decode_entry(m) for m in members]
            recent.sort(key=lambda stored: stored.position)
            positions = {stored.position for stored in recent}
            if len(positions) < len(recent):
                recent = _one_per_position(recent)
            loaded[account_id] = _Account(
                keys=_account_keys(account_id, stride),
                recent=recent,
                devices=_known(devices, device_firsts),
                first=decode_position(first_raw) if first_raw is not None else None,
                countries=_known(countries, country_firsts),
                positions=positions,
                checked=set(devices),
                oldest_score=min((entry.score for entry in recent), default=float("inf")),
                in_time_order=in_time_order(recent),
                stored_at_most=int(stored_count),
                days=_decode_days(days_flat) if profiles else {},
            )
            self._remember(account_id, loaded[account_id])
        txn_replies = replies[len(groups) :]
        values = txn_replies if self._cluster else (txn_replies[0] if txn_ids else [])
        seen: dict[str, Position | None] = {}
        alerted: set[str] = set()
        pending_seen = in_flight.prepared.seen if in_flight is not None else {}
        for txn_id, value in zip(txn_ids, values, strict=True):
            if value is None:
                seen[txn_id] = pending_seen.get(txn_id)
                continue
            text = value.decode() if isinstance(value, bytes) else value
            if text.endswith(_ALERTED):
                alerted.add(txn_id)
                text = text[: -len(_ALERTED)]
            seen[txn_id] = decode_position(text)
        return BatchView(loaded, seen, alerted, merchants, profiles)

    def _remember_merchant(self, merchant_id: str, merchant: MerchantState) -> None:
        """Keep a loaded merchant, within MERCHANT_CACHE (least recently used leave). Safe at
        any time: a merchant not cached is read from Redis, which this shard's saves keep
        complete for its own counts."""
        if not self._merchant_cache:
            return
        cache = self._merchants
        cache[merchant_id] = merchant
        cache.move_to_end(merchant_id)
        while len(cache) > MERCHANT_CACHE:
            cache.popitem(last=False)

    @property
    def cached_merchants(self) -> int:
        return len(self._merchants)

    def save(self, view: BatchView) -> int:
        """Write what the batch added (idempotently); return the number of commands sent."""
        return self.write(self.prepare_save(view))

    def prepare_save(self, view: BatchView) -> PreparedSave:
        """What the batch added, as the script calls that write it; the view's deltas are reset.

        Taken on the batch's own thread, so that `write` can run on another one while the next
        batch changes the (cached) accounts.

        No trimming by event time: a record far in the future would wipe entries that a replay
        of not-yet-checkpointed records still needs. Loads read only the horizon; the key
        expires when the account goes quiet, and a runaway account is capped at its newest
        max_entries by event time.
        """
        config = self._config
        changed = [
            account_id
            for account_id, account in view.accounts.items()
            if account.new_members
            or account.new_devices
            or account.new_countries
            or account.new_days
            or account.dropped_days
        ]
        merchant_changes: dict[str, dict[int, OwnDay]] = {}
        for merchant_id, merchant in view.merchants.items():
            if merchant.changed:
                changes = merchant.changes()
                if changes:
                    merchant_changes[merchant_id] = changes
        # First sight of each transaction id (the alerted mark follows in mark_alerted).
        txn_writes = [
            (_txn_key(txn_id), encode_position(position))
            for txn_id, position in view.new_seen.items()
        ]
        calls: list[tuple[list[str], list[Any]]] = []
        now = time.monotonic()
        groups = self._load_groups(changed, list(merchant_changes))
        in_script = [] if self._cluster else txn_writes
        for index, (group, merchant_group, _) in enumerate(
            groups or ([([], [], [])] if in_script else [])
        ):
            keys: list[str] = []
            args: list[Any] = [
                int(self._keep_s + self._refresh_s) + 1,
                int(config.memory_ttl_s + self._refresh_s),
                config.max_entries,
                len(group),
                config.dedup_ttl_s,
                _ACCOUNT_DAYS_TTL + int(self._refresh_s) + 1,
                len(merchant_group),
                _MERCHANT_DAYS_TTL,
                MERCHANT_DAYS,
                self._stride,
            ]
            for account_id in group:
                account = view.accounts[account_id]
                keys += account.keys
                # The first save of a loaded account refreshes, and creates any key it writes.
                refresh = now - account.refreshed_at >= self._refresh_s
                if refresh:
                    account.refreshed_at = now
                first = account.first  # SET NX: only a key's creation (or refresh) needs it
                account.stored_at_most += len(account.new_members)
                cap = account.stored_at_most > config.max_entries
                if cap:
                    account.stored_at_most = config.max_entries
                days = account.days
                new_days: Collection[int] = account.new_days
                dropped: list[int] = []
                if account.dropped_days:  # rare: a day left
                    new_days = [day for day in account.new_days if day in days]
                    dropped = [day for day in account.dropped_days if day not in days]
                args += (
                    encode_position(first) if refresh and first is not None else "",
                    "1" if refresh else "0",
                    len(account.new_members),
                    len(account.new_devices),
                    len(account.new_countries),
                    "1" if cap else "0",
                    len(new_days),
                    len(dropped),
                )
                for member, score in account.new_members.items():
                    args += (score, member)
                for device, position in account.new_devices.items():
                    args += (device, encode_position(position))
                for country, position in account.new_countries.items():
                    args += (country, encode_position(position))
                for day in new_days:
                    totals = days[day]  # as DayTotals.encode, str() rather than format()
                    args += (day, f"{totals.count}|{totals.total!s}|{totals.squares!s}")
                args += dropped
            shard_id = self._shard_id
            for merchant_id in merchant_group:
                keys.append(merchant_days_key(merchant_id))
                changes = merchant_changes[merchant_id]
                args.append(len(changes))
                for day, (count, (sequence, sub)) in changes.items():
                    args += (f"{day}:{shard_id}", f"{count}|{sequence}.{sub}")
            if index == 0:
                for key, value in in_script:
                    keys.append(key)
                    args.append(value)
            calls.append((keys, args))
        for account in view.accounts.values():  # handed over: written by `write`
            account.new_members = {}
            account.new_devices = {}
            account.new_countries = {}
            if account.new_days or account.dropped_days:
                # Emptied in place: their days are in the args already, and a set allocated
                # per account and batch is work for the young-generation collections.
                account.new_days.clear()
                account.dropped_days.clear()
        self._count_entries(view)
        return PreparedSave(
            calls,
            txn_writes if self._cluster else [],
            accounts=frozenset(changed),
            seen=view.new_seen,  # the batch is judged: its first sightings change no more
            merchants=merchant_changes,
        )

    def write(self, prepared: PreparedSave) -> int:
        """Send a prepared save in one pipelined round trip; return the number of commands.
        Safe to repeat (every write is idempotent), so a retry may send it again."""
        commands = len(prepared.script_calls) + len(prepared.txn_writes)

        def queue(pipe: Any) -> None:
            for keys, args in prepared.script_calls:
                pipe.execute_command("EVALSHA", self._save_sha, len(keys), *keys, *args)
            for key, value in prepared.txn_writes:
                pipe.execute_command("SET", key, value, "NX", "EX", self._config.dedup_ttl_s)

        if commands:
            self._send(queue, "redis.save")
        return commands

    def mark_alerted(self, view: BatchView, transaction_ids: Iterable[str]) -> int:
        """After SNS accepted their alerts: mark them, so a replay does not send them again."""
        pipe = self._redis.pipeline(transaction=False)
        for txn_id in transaction_ids:
            first_seen = view.first_seen(txn_id)
            if first_seen is not None:
                value = encode_position(first_seen) + _ALERTED
                pipe.execute_command("SET", _txn_key(txn_id), value, "XX", "KEEPTTL")
        commands = len(pipe)
        if commands:
            _timed_execute(pipe, "redis.mark_alerted")
        return commands

    @staticmethod
    def _wanted(items: Sequence[tuple[Position, Transaction]]) -> dict[str, _Wanted]:
        """Per account of the batch: how far back its records look, their devices and
        countries."""
        wanted: dict[str, _Wanted] = {}
        for _, txn in items:
            t = float(txn.event_time)
            want = wanted.get(txn.account_id)
            if want is None:
                want = wanted[txn.account_id] = _Wanted(t)
            elif t < want.oldest:
                want.oldest = t
            if txn.device_id is not None:
                want.devices.add(txn.device_id)
            if txn.destination_country is not None:
                want.countries.add(txn.destination_country)
        return wanted

    def _from_cache(self, wanted: dict[str, _Wanted]) -> dict[str, _Account]:
        """Accounts this process already holds, when the cache can answer for them exactly.

        An account lives on one shard and a shard on one processor, so no one else writes it
        while we hold the lease; a new processor (after a crash or a lease move) starts empty.
        An account idle for the expiry time, or asked about a device never checked, goes to
        Redis (so does one asked about a country never checked).
        """
        if not self._cache_size:
            return {}
        now = time.monotonic()
        hits: dict[str, _Account] = {}
        for account_id, want in wanted.items():
            account = self._cache.get(account_id)
            if account is None:
                continue
            if (
                now - account.last_used > self._cache_idle_s
                or not want.devices <= account.checked
                or not want.countries <= account.countries.keys()
            ):
                del self._cache[account_id]
                self._cached_entries -= account.counted
                want.devices |= account.checked  # the reload answers for these too
                want.countries |= account.countries.keys()
                continue
            # Extra older entries change no decision (the rules look back less than keep_s);
            # keeping another lateness allowance makes the cache forgive later, older records.
            account.prune(
                want.oldest - self._keep_s - self._config.lateness_s - 1, self._config.max_entries
            )
            account.last_used = now
            self._cache.move_to_end(account_id)
            hits[account_id] = account
        return hits

    def _remember(self, account_id: str, account: _Account) -> None:
        if not self._cache_size:
            return
        account.last_used = time.monotonic()
        account.counted = len(account.recent)
        self._cached_entries += account.counted
        self._cache[account_id] = account
        self._evict()

    def _count_entries(self, view: BatchView) -> None:
        """At the end of a batch: bring the entry total up to date for the accounts it touched
        (the only ones whose history changed), then keep the cache within its budgets."""
        if not self._cache_size:
            return
        cache = self._cache
        for account_id, account in view.accounts.items():
            if cache.get(account_id) is account:
                size = len(account.recent)
                self._cached_entries += size - account.counted
                account.counted = size
        self._evict()

    def _evict(self) -> None:
        """Least recently used accounts leave until both budgets hold. Safe at any time: an
        account not in the cache is loaded from Redis, which the saves keep complete."""
        cache = self._cache
        evicted = 0
        while cache and (
            len(cache) > self._cache_size or self._cached_entries > self._cache_entries
        ):
            _, account = cache.popitem(last=False)
            self._cached_entries -= account.counted
            evicted += 1
        if evicted:  # many a batch: the cache is too small for the traffic (reloads from Redis)
            METRICS.incr("state.cache_evicted", evicted)

    @property
    def cached_entries(self) -> int:
        """History entries held by the cached accounts (as of the last batch's end)."""
        return self._cached_entries

    @property
    def cached_accounts(self) -> int:
        return len(self._cache)


def _account_keys(account_id: str, stride: int = 5) -> list[str]:
    """The account's keys as the scripts take them: five, or four without profiles (no days)."""
    keys = [
        _account_key(account_id, "recent"),
        _account_key(account_id, "devices"),
        _account_key(account_id, "countries"),
        _account_key(account_id, "first"),
        _account_key(account_id, "days"),
    ]
    return keys if stride == 5 else keys[:stride]


def _known(asked: list[str], firsts: list[bytes | None]) -> dict[str, Position]:
    """HMGET's answer for `asked`: the ones Redis knows, with the position of their first use."""
    return {
        name: decode_position(first)
        for name, first in zip(asked, firsts, strict=True)
        if first is not None
    }
