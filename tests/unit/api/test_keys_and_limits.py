"""API keys (parsing, matching, rotation by re-reading) and the token bucket, with no server."""

from __future__ import annotations

import json
import re

import pytest

from consumer.api.keys import KeyRing, KeysError, hash_key, new_key, parse_keys
from consumer.api.ratelimit import RateLimiter, TokenBucket


def document(*entries: dict[str, object]) -> str:
    return json.dumps({"keys": list(entries)})


def test_a_minted_key_is_accepted_by_its_entry_and_only_by_it() -> None:
    key, entry = new_key("gateway")
    other, other_entry = new_key("batch-job")
    assert key != other and entry["sha256"] == hash_key(key) and key not in json.dumps(entry)
    ring = KeyRing(lambda: document(entry, other_entry), "test", 60)
    found = ring.match(key)
    assert found is not None and found.id == "gateway"
    assert ring.match(other).id == "batch-job"  # type: ignore[union-attr]
    assert ring.match(key + "x") is None and ring.match("") is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[]", "must be a JSON object"),
        ("{", "not valid JSON"),
        (document({"id": "a", "sha256": "00"}), "keys[0].sha256: must be 64"),
        (document({"sha256": "0" * 64}), "keys[0].id"),
        (document({"id": "a", "sha256": "0" * 64}, {"id": "a", "sha256": "1" * 64}), "twice"),
        (document({"id": "a", "sha256": "0" * 64, "rate_per_s": -1}), "rate_per_s: must be"),
        (document({"id": "a", "sha256": "0" * 64, "burst": 1.5}), "burst: must be a whole"),
    ],
)
def test_a_bad_document_is_refused_naming_what(text: str, reason: str) -> None:
    with pytest.raises(KeysError, match=re.escape(reason)):
        parse_keys(text, "keys.json")


def test_rotation_is_a_reread_and_a_broken_document_keeps_the_keys_in_force() -> None:
    old, old_entry = new_key("old")
    new, new_entry = new_key("new")
    current = {"text": document(old_entry)}
    ring = KeyRing(lambda: current["text"], "test", 60)
    assert ring.match(new) is None
    current["text"] = document(old_entry, new_entry)  # both during the move
    assert ring.refresh() and ring.match(new) is not None and ring.match(old) is not None
    current["text"] = "{broken"
    assert not ring.refresh() and ring.match(new) is not None
    current["text"] = document(new_entry)  # the old one retired
    assert ring.refresh() and ring.match(old) is None and ring.match(new) is not None


def test_limits_per_key_come_from_the_document() -> None:
    (key,) = parse_keys(
        document({"id": "a", "sha256": "0" * 64, "rate_per_s": 5, "burst": 10}), "t"
    )
    assert key.rate_per_s == 5.0 and key.burst == 10


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, 3, clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token at 2/s
    clock.now += 0.5
    assert bucket.take() == 0.0 and bucket.take() > 0
    clock.now += 100  # never more than the burst
    assert [bucket.take() for _ in range(4)][-1] > 0


def test_the_limiter_keeps_a_bucket_per_key_and_renews_it_when_limits_change() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert limiter.take("a", 1, 1) == 0.0 and limiter.take("a", 1, 1) > 0
    assert limiter.take("b", 1, 1) == 0.0  # another key, its own bucket
    assert limiter.take("a", 1, 2) == 0.0  # new limits (a re-read document): a new bucket
