"""`fraudstream status`: the model's precision and recall by day from the labels' counters in
Redis (issue #21 item 6), read from a real redis-server whose hashes the test writes as the
label store (consumer/state/labels.py) does: `fs:quality:{YYYY-MM-DD}` with fraud_alerted,
fraud_missed, clean_alerted, clean_quiet and the unknowns."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, date, datetime
from typing import Any

import pytest
import redis

from consumer.cli import main, status_report
from consumer.cli.status_report import (
    DayQuality,
    QualityStatus,
    day_quality,
    quality_key,
    quality_status,
    render_quality,
    utc_day,
)
from consumer.state import labels
from tests.unit.cli.test_status import STREAM, TABLE, Aws, aws  # noqa: F401 - the fixture

TODAY = 20_420  # 2025-11-28


def counts(fa: int, fm: int, ca: int, cq: int) -> dict[str, int]:
    return {"fraud_alerted": fa, "fraud_missed": fm, "clean_alerted": ca, "clean_quiet": cq}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_key_is_the_label_stores_and_days_are_utc() -> None:
    assert quality_key(TODAY) == "fs:quality:{2025-11-28}"
    assert quality_key(TODAY) == labels.quality_key(date(2025, 11, 28))
    assert utc_day(datetime(1970, 1, 2, 0, 0, tzinfo=UTC)) == 1
    assert utc_day(datetime(2025, 11, 28, 23, 59, tzinfo=UTC)) == TODAY
    assert DayQuality(TODAY).date == "2025-11-28"


def test_precision_and_recall_and_their_empty_denominators() -> None:
    day = DayQuality(TODAY, fraud_alerted=3, fraud_missed=1, clean_alerted=9, clean_quiet=87)
    assert (day.labelled, day.precision, day.recall) == (100, 0.25, 0.75)
    quiet = DayQuality(TODAY, clean_quiet=5)  # no alert and no fraud labelled
    assert (quiet.labelled, quiet.precision, quiet.recall) == (5, None, None)
    # Alerted or not no longer known: labelled, in no ratio.
    unknown = DayQuality(TODAY, fraud_alerted=1, fraud_unknown=4, clean_unknown=2)
    assert (unknown.labelled, unknown.unknown, unknown.precision, unknown.recall) == (7, 6, 1, 1)
    only_missed = DayQuality(TODAY, fraud_missed=2)
    assert (only_missed.precision, only_missed.recall) == (None, 0.0)


def test_days_are_read_from_redis_oldest_first_with_the_window_total(
    redis_conn: redis.Redis, redis_url: str
) -> None:
    redis_conn.hset(quality_key(TODAY - 2), mapping=counts(6, 2, 10, 22))
    redis_conn.hset(quality_key(TODAY), mapping=counts(1, 0, 3, 4) | {"clean_unknown": 2})
    redis_conn.hset(quality_key(TODAY - 3), mapping=counts(50, 50, 50, 50))  # outside: 3 days
    redis_conn.hset(quality_key(TODAY + 1), mapping=counts(50, 50, 50, 50))  # not yet

    status = quality_status(redis_url, days=3, today=TODAY)

    assert status.error is None and status.redis == redis_url.rsplit("/", 1)[0]
    assert [d.day for d in status.days] == [TODAY - 2, TODAY - 1, TODAY]
    older, missing, today = status.days
    assert (older.labelled, older.precision, older.recall) == (40, 0.375, 0.75)
    assert missing == DayQuality(TODAY - 1)  # no key: nothing labelled that day
    assert (missing.precision, missing.recall) == (None, None)
    assert (today.precision, today.recall) == (0.25, 1.0)
    total = status.total()
    assert (total.fraud_alerted, total.clean_alerted, total.labelled) == (7, 13, 50)
    assert total.precision == pytest.approx(7 / 20) and total.recall == pytest.approx(7 / 9)

    table = render_quality(status).splitlines()
    assert table[0].startswith("MODEL QUALITY  by day labelled (UTC), redis://127.0.0.1:")
    assert table[1].split()[:2] == ["DAY", "LABELLED"]
    by_day = {line.split()[0]: line.split() for line in table[2:]}
    assert by_day[older.date] == [older.date, "40", "6", "2", "10", "22", "0", "37.5%", "75.0%"]
    assert by_day[missing.date][-2:] == ["n/a", "n/a"]
    all_days = ["all", "3", "days", "50", "7", "2", "13", "26", "2", "35.0%", "77.8%"]
    assert table[-1].split() == all_days


def test_a_day_that_cannot_be_read_is_named_and_counts_in_no_total(
    redis_conn: redis.Redis, redis_url: str
) -> None:
    redis_conn.hset(quality_key(TODAY - 2), mapping=counts(1, 1, 1, 1))
    redis_conn.hset(quality_key(TODAY - 1), mapping=counts(2, 0, 0, 0) | {"clean_quiet": "x"})
    redis_conn.set(quality_key(TODAY), "not a hash")

    status = quality_status(redis_url, days=3, today=TODAY)

    assert status.error is None
    assert status.days[0].note == ""
    assert "clean_quiet" in status.days[1].note and status.days[1].labelled == 0
    assert "WRONGTYPE" in status.days[2].note
    assert status.total().labelled == 4
    text = render_quality(status)
    assert text.count("unreadable") == 2 and "all 3 days" in text
    header, first = text.splitlines()[1:3]
    assert header.index("LABELLED") + len("LABELLED") == first.index(" 4 ") + 2  # not widened


def test_day_quality_takes_str_or_bytes_and_missing_fields_as_zero() -> None:
    assert day_quality(TODAY, {b"fraud_alerted": b"2", "clean_alerted": "3"}) == DayQuality(
        TODAY, fraud_alerted=2, clean_alerted=3
    )
    assert day_quality(TODAY, {}) == DayQuality(TODAY)
    assert "unreadable" in day_quality(TODAY, {"fraud_missed": "-1"}).note


def test_an_unreachable_redis_is_one_line_without_credentials() -> None:
    url = f"redis://:s3cret-token@127.0.0.1:{closed_port()}/0"
    started = time.monotonic()
    status = quality_status(url, today=TODAY, connect_timeout_s=0.5, read_timeout_s=0.5)
    assert time.monotonic() - started < 5
    assert status.days == [] and status.error is not None
    assert status.error.startswith("cannot reach Redis at redis://127.0.0.1:")
    line = render_quality(status)
    assert line.startswith("MODEL QUALITY  not read: cannot reach Redis at")
    assert "\n" not in line
    document = json.dumps(status.as_dict())
    assert "s3cret" not in line + document
    assert status.as_dict()["total"] is None


def test_a_malformed_url_is_reported_not_raised() -> None:
    status = quality_status("redis://127.0.0.1:notaport/0", today=TODAY)
    assert status.error is not None and status.error.startswith("cannot reach Redis")


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def today(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(status_report, "utc_day", lambda now=None: TODAY)
    return TODAY


def status_args(*extra: str) -> list[str]:
    return ["status", "--stream", STREAM, "--table", TABLE, *extra]


def test_the_cli_shows_quality_under_the_shards(
    aws: Aws,  # noqa: F811 - the fixture
    redis_conn: redis.Redis,
    redis_url: str,
    today: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    redis_conn.hset(quality_key(today - 1), mapping=counts(3, 1, 1, 5))
    assert main(status_args("--redis-url", redis_url, "--days", "2")) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["SHARD", "STATE", "OWNER"]
    section = out.split("\n\n")[-1].splitlines()
    assert section[0].startswith("MODEL QUALITY")
    assert [line.split()[0] for line in section[2:]] == ["2025-11-27", "2025-11-28", "all"]
    assert section[2].split()[-2:] == ["75.0%", "75.0%"]


def test_the_cli_json_has_the_days_and_the_total(
    aws: Aws,  # noqa: F811 - the fixture
    redis_conn: redis.Redis,
    redis_url: str,
    today: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    redis_conn.hset(quality_key(today), mapping=counts(0, 4, 0, 6))
    monkeypatch.setenv("REDIS_URL", redis_url)  # the worker's setting is the default
    assert main(status_args("--json")) == 0
    quality: dict[str, Any] = json.loads(capsys.readouterr().out)["quality"]
    assert quality["error"] is None and len(quality["days"]) == 14
    last = quality["days"][-1]
    assert (last["day"], last["date"], last["labelled"]) == (today, "2025-11-28", 10)
    assert (last["precision"], last["recall"]) == (None, 0.0)
    assert quality["total"]["fraud_missed"] == 4


def test_the_cli_with_redis_down_still_shows_the_shards_and_exits_0(
    aws: Aws,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    assert main(status_args("--redis-url", url)) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("SHARD")
    assert out.rstrip().splitlines()[-1].startswith("MODEL QUALITY  not read: cannot reach Redis")
    assert "Traceback" not in out + err
    assert main(status_args("--redis-url", url, "--json")) == 0
    quality = json.loads(capsys.readouterr().out)["quality"]
    assert quality["days"] == [] and "cannot reach Redis" in quality["error"]


def test_without_a_redis_url_the_section_is_left_out(
    aws: Aws,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(status_args("--json")) == 0
    assert "quality" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("days", ["0", "367", "two"])
def test_days_out_of_range_are_refused(days: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(status_args("--days", days))
    assert exit_.value.code == 2
    assert "1-366" in capsys.readouterr().err


def test_quality_status_is_a_plain_value() -> None:
    assert QualityStatus("redis://x:6379").as_dict()["days"] == []
