"""Labels into Redis: the merchants' labelled transactions the profiles read, and the quality
counters of alerts against verdicts.

Why it is shaped like this:
- **Applied once, in any order.** A label file may come twice, late, or after a newer verdict on
  the same transaction. A Lua script per merchant keeps, per transaction, the label
  `consumer.rules.profile.newer_label` keeps (the latest `labelled_at`, on a tie fraud), so
  re-delivery and disorder leave what they should. `labelled_at` is compared exactly: the reader
  (consumer/labels/records.py) bounds it to 0 <= t < 1e12 seconds with at most 6 decimals, so the
  script compares fixed-width digit strings (a Lua number, a double, would not be exact).
- **What the state store reads**: `fs:merch:{M}:labels`, a HASH transaction id ->
  `LabelMark.encode()` (consumer/state/profiles.py decodes it). Beside it, in the same slot,
  `fs:merch:{M}:labels:newest` holds the newest event day seen, so a label older than
  MERCHANT_DAYS before it is refused in O(1) and the hash is only swept when that day moves on
  (about once a day per merchant). Both expire MERCHANT_DAYS + 1 days after the last label.
- **Cluster-safe**: every command or script touches one slot: the merchant's two keys, a
  transaction id's own keys (`fs:txn:{T}`, `fs:txn:{T}:label`) or a day's counters.
- **Bounded round trips**: a chunk of labels (500) is two pipelined round trips, whatever it
  holds: the scripts and the transaction keys, then the quality counters.

Quality (docs/labels.md#quality): the first label a transaction gets is counted once, under the
UTC day of its `labelled_at`, in `fs:quality:{YYYY-MM-DD}` (HASH): fraud or clean, crossed with
whether the worker alerted on it (`fs:txn:{T}` ends in `|A`), stayed quiet (it holds a position
without `|A`), or cannot tell (the key is gone: it lives FRAUD_DEDUP_TTL_S, 24 h by default). A
transaction's first label marks `fs:txn:{T}:label` "p" (pending) and, once counted, "c": a chunk
that failed between the two round trips is counted when its file is applied again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from redis.exceptions import NoScriptError

from consumer.rules.profile import DAY_S, MERCHANT_DAYS, LabelMark, day_of

CHUNK = 500
# The merchant's labels live as long as the profile reads them, one day more.
LABELS_TTL_S = (MERCHANT_DAYS + 1) * DAY_S
# A transaction's "first label" mark: chargebacks arrive up to about 120 days late.
FIRST_LABEL_TTL_S = 180 * DAY_S
QUALITY_TTL_S = 400 * DAY_S
QUALITY_FIELDS: tuple[str, ...] = (
    "fraud_alerted",
    "fraud_missed",
    "fraud_unknown",
    "clean_alerted",
    "clean_quiet",
    "clean_unknown",
)
_ALERTED = b"|A"
_PENDING = "p"
_COUNTED = "c"


class LabelLike(Protocol):
    """What the store reads of a label (consumer.labels.records.Label)."""

    @property
    def transaction_id(self) -> str: ...
    @property
    def is_fraud(self) -> bool: ...
    @property
    def labelled_at(self) -> Decimal: ...
    @property
    def merchant_id(self) -> str | None: ...
    @property
    def event_time(self) -> Decimal: ...


def merchant_labels_key(merchant_id: str) -> str:
    return f"fs:merch:{{{merchant_id}}}:labels"


def merchant_newest_key(merchant_id: str) -> str:
    return f"fs:merch:{{{merchant_id}}}:labels:newest"


def _txn_key(transaction_id: str) -> str:
    return f"fs:txn:{{{transaction_id}}}"


def _first_label_key(transaction_id: str) -> str:
    return f"fs:txn:{{{transaction_id}}}:label"


def quality_key(day: date) -> str:
    return f"fs:quality:{{{day.isoformat()}}}"


def _utc_day(seconds: Decimal) -> date:
    return date(1970, 1, 1) + timedelta(days=day_of(seconds))


# KEYS: the merchant's labels hash, its newest-day key. ARGV: MERCHANT_DAYS, the expiry, then
# five per label: transaction id, event day, labelled_at, 1|0, LabelMark.encode().
# Returns {applied, unchanged, too old}.
_APPLY = """
local days, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local function mag(s)
  local i, f = string.match(s or '', '^(%d+)%.?(%d*)$')
  if i == nil or #i > 12 or #f > 6 then return nil end
  return string.rep('0', 12 - #i) .. i .. f .. string.rep('0', 6 - #f)
end
local newest = tonumber(redis.call('GET', KEYS[2]) or '')
local top = newest
for a = 3, #ARGV, 5 do
  local day = tonumber(ARGV[a + 1])
  if top == nil or day > top then top = day end
end
local floor = top - days + 1
if newest == nil or top > newest then
  redis.call('SET', KEYS[2], top)
  local all = redis.call('HGETALL', KEYS[1])
  for j = 1, #all, 2 do
    local d = tonumber(string.match(all[j + 1], '^(-?%d+)|') or '')
    if d == nil or d < floor then redis.call('HDEL', KEYS[1], all[j]) end
  end
end
local applied, unchanged, old = 0, 0, 0
for a = 3, #ARGV, 5 do
  if tonumber(ARGV[a + 1]) < floor then
    old = old + 1
  else
    local replace = true
    local kept = redis.call('HGET', KEYS[1], ARGV[a])
    if kept then
      local kept_at, kept_fraud = string.match(kept, '^-?%d+|([^|]*)|([01])$')
      local km = mag(kept_at)
      if km ~= nil then
        local im = mag(ARGV[a + 2])
        replace = im > km or (im == km and ARGV[a + 3] == '1' and kept_fraud == '0')
      end
    end
    if replace then
      redis.call('HSET', KEYS[1], ARGV[a], ARGV[a + 4])
      applied = applied + 1
    else
      unchanged = unchanged + 1
    end
  end
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {applied, unchanged, old}
"""
_APPLY_SHA = hashlib.sha1(_APPLY.encode(), usedforsecurity=False).hexdigest()


@dataclass
class ApplyResult:
    """What applying labels did. `applied`: stored as the transaction's newest verdict;
    `unchanged`: not newer than the one kept (a repeat, an older or equal label); `too_old`: its
    event day is older than the merchant's window; `without_merchant`: no merchant to apply to
    (still counted for quality); `first_labels`: transactions labelled for the first time."""

    labels: int = 0
    applied: int = 0
    unchanged: int = 0
    too_old: int = 0
    without_merchant: int = 0
    first_labels: int = 0

    def add(self, other: ApplyResult) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _chunks(labels: Iterable[LabelLike], size: int) -> Iterator[list[LabelLike]]:
    chunk: list[LabelLike] = []
    for label in labels:
        chunk.append(label)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _newest_per_transaction(chunk: Sequence[LabelLike]) -> dict[str, LabelLike]:
    """Each transaction's newest label in the chunk (the one its quality count takes)."""
    newest: dict[str, LabelLike] = {}
    for label in chunk:
        kept = newest.get(label.transaction_id)
        if kept is None or (label.labelled_at, label.is_fraud) > (kept.labelled_at, kept.is_fraud):
            newest[label.transaction_id] = label
    return newest


class LabelStore:
    """Applies labels to Redis in chunks, each two pipelined round trips; reads the quality
    counters back."""

    def __init__(self, redis: Any, chunk: int = CHUNK) -> None:
        self._redis = redis
        self._chunk = chunk

    def apply(self, labels: Iterable[LabelLike]) -> ApplyResult:
        """Apply every label (streamed: `labels` may be a whole file's generator)."""
        result = ApplyResult()
        for chunk in _chunks(labels, self._chunk):
            result.add(self.apply_chunk(chunk))
        return result

    def apply_chunk(self, chunk: Sequence[LabelLike]) -> ApplyResult:
        """One chunk: the merchants' scripts and the transactions' keys in one round trip, the
        quality counters of the first-labelled in a second."""
        result = ApplyResult(labels=len(chunk))
        per_merchant: dict[str, list[Any]] = {}
        for label in chunk:
            if label.merchant_id is None:
                result.without_merchant += 1
                continue
            args = per_merchant.setdefault(label.merchant_id, [])
            at = _exact_at(label.labelled_at)
            mark = LabelMark(day_of(label.event_time), Decimal(at), label.is_fraud)
            args += (
                label.transaction_id,
                mark.event_day,
                at,
                1 if label.is_fraud else 0,
                mark.encode(),
            )
        newest = _newest_per_transaction(chunk)

        def queue(pipe: Any) -> None:
            for merchant_id, args in per_merchant.items():
                keys = (merchant_labels_key(merchant_id), merchant_newest_key(merchant_id))
                pipe.execute_command(
                    "EVALSHA", _APPLY_SHA, 2, *keys, MERCHANT_DAYS, LABELS_TTL_S, *args
                )
            for txn_id in newest:
                pipe.execute_command("GET", _txn_key(txn_id))
                mark = _first_label_key(txn_id)
                pipe.execute_command("SET", mark, _PENDING, "NX", "EX", FIRST_LABEL_TTL_S)
                pipe.execute_command("GET", mark)

        replies = self._send(queue)
        for applied, unchanged, old in replies[: len(per_merchant)]:
            result.applied += int(applied)
            result.unchanged += int(unchanged)
            result.too_old += int(old)
        txn_replies = replies[len(per_merchant) :]
        counts: dict[date, dict[str, int]] = {}
        counted: list[str] = []
        for i, (txn_id, label) in enumerate(newest.items()):
            position, _, state = txn_replies[3 * i : 3 * i + 3]
            if state not in (_PENDING, _PENDING.encode()):
                continue
            verdict = "fraud" if label.is_fraud else "clean"
            if position is None:
                seen = "unknown"
            elif _as_bytes(position).endswith(_ALERTED):
                seen = "alerted"
            else:
                seen = "missed" if label.is_fraud else "quiet"
            day = counts.setdefault(_utc_day(label.labelled_at), {})
            day[f"{verdict}_{seen}"] = day.get(f"{verdict}_{seen}", 0) + 1
            counted.append(txn_id)
        if counted:
            pipe = self._redis.pipeline(transaction=False)
            for day_of_label, day_counts in counts.items():
                key = quality_key(day_of_label)
                for name, n in day_counts.items():
                    pipe.execute_command("HINCRBY", key, name, n)
                pipe.execute_command("EXPIRE", key, QUALITY_TTL_S)
            for txn_id in counted:
                pipe.execute_command("SET", _first_label_key(txn_id), _COUNTED, "XX", "KEEPTTL")
            pipe.execute()
        result.first_labels = len(counted)
        return result

    def quality(
        self, days: int | Iterable[date], today: date | None = None
    ) -> dict[date, dict[str, int]]:
        """The quality counters of the given UTC days, or of the last `days` days up to `today`
        (default: today, UTC); every field present, zeros where nothing was counted."""
        if isinstance(days, int):
            end = today or datetime.now(UTC).date()
            wanted = [end - timedelta(days=n) for n in range(days - 1, -1, -1)]
        else:
            wanted = list(days)
        pipe = self._redis.pipeline(transaction=False)
        for day in wanted:
            pipe.execute_command("HGETALL", quality_key(day))
        out: dict[date, dict[str, int]] = {}
        for day, reply in zip(wanted, pipe.execute(), strict=True):
            counts = dict.fromkeys(QUALITY_FIELDS, 0)
            flat = _pairs(reply)
            for name, value in flat.items():
                if name in counts:
                    counts[name] = int(value)
            out[day] = counts
        return out

    def _send(self, queue: Any) -> list[Any]:
        """One pipelined round trip; the script loaded and the trip repeated once when Redis
        does not know it (first use, a restart, a failover). Safe: a pipeline that failed on
        NOSCRIPT ran no script, and every write here is idempotent."""
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            queue(pipe)
            try:
                replies: list[Any] = pipe.execute()
                return replies
            except NoScriptError:
                if attempt == 2:
                    raise
                self._redis.script_load(_APPLY)
        raise AssertionError("unreachable")


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _exact_at(labelled_at: Decimal) -> str:
    """`labelled_at` as the script compares it: plain digits, 0 <= t < 1e12, <= 6 decimals.
    The label reader only makes such values; anything else is a caller's bug, refused here
    rather than compared wrongly in Redis."""
    whole, _, fraction = format(labelled_at, "f").partition(".")
    fraction = fraction.rstrip("0")
    if labelled_at < 0 or len(whole) > 12 or len(fraction) > 6:
        raise ValueError(f"labelled_at out of the label bounds: {labelled_at}")
    return f"{whole}.{fraction}" if fraction else whole


def _pairs(reply: Any) -> dict[str, str]:
    """An HGETALL reply as text, whether the client gave a dict or a flat list, bytes or str."""

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    if isinstance(reply, dict):
        return {text(k): text(v) for k, v in reply.items()}
    return {text(reply[i]): text(reply[i + 1]) for i in range(0, len(reply), 2)}
