"""`fraudstream evaluate`: the benchmark's protocol (Le Borgne et al., Reproducible Machine
Learning for Credit Card Fraud Detection, chapters 3.4 and 4) over a labelled file.

The file is read once, in stream order, each record with the history the stream would give it
(consumer.model.dataset: invalid records and duplicates skipped as the stream skips them). Its
event times are cut into whole UTC days counted from the day of its first valid record:

    warm-up   [0, W)            history only: the features need their 24 h (the book's
                                profiles need 30 days)
    train     [W, W+T)          the model's training rows, nothing else
    delay     [W+T, W+T+D)      history only: the labels of these days are not known yet
    test      [W+T+D, W+T+D+S)  scored and measured, day by day

Records after the test period are only counted. The model is trained as `fraudstream
train` trains (consumer.model.train's LightGBM parameters and categorical encoding), on the
training rows only and for a fixed FIXED_ROUNDS rounds: the book trains with fixed
hyper-parameters, and early stopping would take a validation slice from the seven days.

A "card" is the record's `account_id`. A label is known `D` days after its transaction (the
configured delay): a card is **known compromised** on a test day when one of its frauds from
the training period on was known before that day began, i.e. happened on a day from the start
of training up to `d - D - 1`; its transactions are dropped from that day, as the book drops
them (a bank has blocked the card). As in the book's protocol, frauds of the warm-up do not
count: its known set starts with the training period's frauds.

Labels come from a `LabelSource`: `RecordLabels`, the record's `fraud` field (else
`expected_rules`, as training reads it), known the delay after the transaction; or a labels
file (docs/contract.md, labels), each label known from its `labelled_at`. A fraud label
reaches the merchant profiles (consumer/rules/profile.py) from the time it is known, so the
rows of later records see it, as the stream's would.

Three variants score the test transactions:

    model            the model's probability (its score 0-100 / 100)
    rules            1 when the default rule set flags the transaction, else 0
    rules_or_model   max(model, rules): 1 when the rules flag, else the model's probability

and each gets ROC AUC and average precision over the test transactions kept, and Card
Precision@k (consumer.model.metrics.card_precision_at_k: per test day the cards ranked by
their highest score, the top k, the share with a fraud that day; cards so detected leave the
later days). The rules' score is binary, so their ranking of cards is mostly ties, which
card_ranking breaks by a fixed hash of the card id. No I/O here beyond reading the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from consumer.errors import FraudstreamError
from consumer.model import metrics
from consumer.model.dataset import stream_history, transactions
from consumer.model.features import (
    CATEGORICAL_FEATURES,
    FEATURE_NAMES,
    STREAM_UNAVAILABLE,
    FeatureRow,
    features_for,
)
from consumer.model.labels import LabelSource, RecordLabels
from consumer.model.metrics import CardDay
from consumer.records import InvalidRecord
from consumer.rules.ruleset import judge_with_ruleset
from consumer.rules.ruleset_load import default_ruleset

DAY_S = 86400
VARIANTS: tuple[str, ...] = ("model", "rules", "rules_or_model")


class EvaluateError(FraudstreamError, ValueError):
    """The file or the periods cannot be evaluated; the message says why."""


@dataclass(frozen=True)
class Periods:
    """Whole days from the file's first day: warm-up, train, delay, test."""

    warmup_days: int = 1
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    def check(self) -> None:
        if self.warmup_days < 0 or self.delay_days < 0:
            raise EvaluateError("warm-up and delay days cannot be negative")
        if self.train_days < 1 or self.test_days < 1:
            raise EvaluateError("train and test periods need at least one day each")

    @property
    def train_start(self) -> int:
        return self.warmup_days

    @property
    def test_start(self) -> int:
        return self.warmup_days + self.train_days + self.delay_days

    @property
    def test_end(self) -> int:
        return self.test_start + self.test_days


@dataclass
class VariantResult:
    roc_auc: float
    average_precision: float
    card_precision_at_k: float
    card_precision_per_day: list[float]
    scores: Any = field(repr=False)  # the kept test transactions' scores (numpy), for curves

    def summary(self) -> dict[str, Any]:
        return {
            "roc_auc": _round(self.roc_auc),
            "average_precision": _round(self.average_precision),
            "card_precision_at_k": _round(self.card_precision_at_k),
            "card_precision_per_day": [_round(v) for v in self.card_precision_per_day],
        }


@dataclass
class Evaluation:
    input: str
    periods: Periods
    k: int
    first_day: str  # UTC date of day 0
    period_dates: dict[str, tuple[str, str]]  # name -> (first date, last date), inclusive
    rows: dict[str, int]  # valid non-duplicate records per period ("after": past the test end)
    frauds: dict[str, int]
    test_days_present: int
    test_rows_kept: int
    test_rows_known_compromised: int
    test_frauds_kept: int
    invalid: int
    duplicates: int
    trees: int
    variants: dict[str, VariantResult]
    test_labels: Any = field(repr=False)  # the kept test transactions' labels (numpy bool)

    def summary(self) -> dict[str, Any]:
        """Everything but the arrays, for JSON."""
        return {
            "input": self.input,
            "periods": {
                "warmup_days": self.periods.warmup_days,
                "train_days": self.periods.train_days,
                "delay_days": self.periods.delay_days,
                "test_days": self.periods.test_days,
            },
            "k": self.k,
            "first_day": self.first_day,
            "period_dates": {name: list(dates) for name, dates in self.period_dates.items()},
            "rows": self.rows,
            "frauds": self.frauds,
            "test_days_present": self.test_days_present,
            "test_rows_kept": self.test_rows_kept,
            "test_rows_known_compromised": self.test_rows_known_compromised,
            "test_frauds_kept": self.test_frauds_kept,
            "invalid_skipped": self.invalid,
            "duplicates_skipped": self.duplicates,
            "trees": self.trees,
            "variants": {name: v.summary() for name, v in self.variants.items()},
        }


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def _date(day0: float, day: int) -> str:
    return datetime.fromtimestamp(day0 + day * DAY_S, UTC).date().isoformat()


@dataclass
class _TestRow:
    card: str
    day: int
    fraud: bool
    ruled: bool


@dataclass
class Collected:
    """What one pass over the file gives: the training rows and labels, the test rows with
    what Card Precision needs of each, and the counts the report shows. Training and measuring
    start from here, so a model can be compared with another on the same rows."""

    input: str
    periods: Periods
    day0: float
    last_day: int
    rows: dict[str, int]
    frauds: dict[str, int]
    known_at: dict[str, float]
    train_rows: list[FeatureRow]
    train_labels: list[bool]
    test_rows: list[FeatureRow]
    test: list[_TestRow]
    invalid: int
    duplicates: int


def evaluate(
    path: Path,
    periods: Periods | None = None,
    *,
    k: int = 100,
    labels: LabelSource | None = None,
) -> Evaluation:
    """The protocol over the labelled file `path`; see the module docstring."""
    import numpy as np

    if k < 1:
        raise EvaluateError(f"k must be at least 1, not {k}")
    collected = collect(path, periods, labels)
    train_y = np.asarray(collected.train_labels, dtype=bool)
    booster, encoder = _train(collected.train_rows, train_y)
    model_scores: Any = booster.predict(encoder.encode(collected.test_rows), raw_score=False)
    return measure(
        collected, np.asarray(model_scores, dtype=np.float64), k, booster.current_iteration()
    )


def collect(
    path: Path, periods: Periods | None = None, labels: LabelSource | None = None
) -> Collected:
    """Read `path` once in stream order: each record's features as the stream would compute
    them (labels reaching the profiles when they become known), cut into the periods."""
    periods = periods or Periods()
    periods.check()
    if not path.is_file():
        raise EvaluateError(f"{path}: no such file")
    source = labels if labels is not None else RecordLabels(periods.delay_days * DAY_S)
    ruleset = default_ruleset()
    names = ("warmup", "train", "delay", "test", "after")
    rows = dict.fromkeys(names, 0)
    frauds = dict.fromkeys(names, 0)
    known_at: dict[str, float] = {}  # card -> earliest time one of its frauds is known
    train_rows: list[FeatureRow] = []
    train_labels: list[bool] = []
    test_rows: list[FeatureRow] = []
    test: list[_TestRow] = []
    day0: float | None = None
    last_day = 0
    invalid = 0
    stream = stream_history()
    for where, parsed in transactions(path):
        if isinstance(parsed, InvalidRecord):
            invalid += 1
            continue
        history = stream.observe(parsed)
        if history is None:
            continue  # a duplicate, as the stream drops it
        txn = parsed
        t = float(txn.event_time)
        if day0 is None:
            day0 = math.floor(t / DAY_S) * DAY_S
        day = math.floor((t - day0) / DAY_S)
        last_day = max(last_day, day)
        if day >= periods.test_end:
            rows["after"] += 1
            continue  # only counted
        name = (
            "warmup"
            if day < periods.train_start
            else "train"
            if day < periods.train_start + periods.train_days
            else "delay"
            if day < periods.test_start
            else "test"
        )
        labelled = source.label(txn)
        if labelled is None:
            raise EvaluateError(f"{where}: no label (want a `fraud` or `expected_rules` field)")
        fraud, known = labelled
        if fraud:
            stream.apply_fraud(txn, Decimal(repr(known)))
        rows[name] += 1
        if fraud:
            frauds[name] += 1
            if name != "warmup":  # the book's known set starts with the training period
                card = txn.account_id
                known_at[card] = min(known, known_at.get(card, math.inf))
        if name == "train":
            train_rows.append(features_for(txn, history, periods.delay_days))
            train_labels.append(fraud)
        elif name == "test":
            test_rows.append(features_for(txn, history, periods.delay_days))
            ruled = judge_with_ruleset(txn, history, ruleset).flagged
            test.append(_TestRow(txn.account_id, day, fraud, ruled))
    duplicates = stream.duplicates
    if day0 is None:
        raise EvaluateError(f"{path}: no valid record")
    if not test:
        raise EvaluateError(
            f"{path}: no record in the test period (from {_date(day0, periods.test_start)}); "
            f"the file's records end on {_date(day0, last_day)}: fewer days, or a longer file"
        )
    positives = sum(train_labels)
    if positives == 0 or positives == len(train_labels):
        raise EvaluateError(
            f"{path}: the training period has {positives} frauds in {len(train_labels)} "
            "records; it needs both classes"
        )
    return Collected(
        str(path),
        periods,
        day0,
        last_day,
        rows,
        frauds,
        known_at,
        train_rows,
        train_labels,
        test_rows,
        test,
        invalid,
        duplicates,
    )


def measure(collected: Collected, model_scores: Any, k: int, trees: int) -> Evaluation:
    """The report for the model's scores of the test rows (in `collected.test_rows` order):
    the three variants' ROC AUC, average precision and Card Precision@k."""
    import numpy as np

    periods, test, known_at, day0 = (
        collected.periods,
        collected.test,
        collected.known_at,
        collected.day0,
    )

    rule_scores = np.asarray([r.ruled for r in test], dtype=np.float64)
    scores = {
        "model": model_scores,
        "rules": rule_scores,
        "rules_or_model": np.maximum(model_scores, rule_scores),
    }

    kept = np.asarray(
        [known_at.get(r.card, math.inf) >= day0 + r.day * DAY_S for r in test], dtype=bool
    )
    y = np.asarray([r.fraud for r in test], dtype=bool)[kept]
    kept_rows = [r for r, keep in zip(test, kept, strict=True) if keep]
    days_present = sorted({r.day for r in test})
    variants: dict[str, VariantResult] = {}
    for name in VARIANTS:
        s = scores[name][kept]
        days = _card_days(kept_rows, s.tolist(), days_present)
        per_day = metrics.card_precision_per_day(days, k)
        variants[name] = VariantResult(
            roc_auc=metrics.roc_auc(y, s),
            average_precision=metrics.average_precision(y, s),
            card_precision_at_k=sum(per_day) / len(per_day),
            card_precision_per_day=per_day,
            scores=s,
        )
    p = periods
    bounds = {
        "warmup": (0, p.train_start),
        "train": (p.train_start, p.train_start + p.train_days),
        "delay": (p.train_start + p.train_days, p.test_start),
        "test": (p.test_start, p.test_end),
    }
    return Evaluation(
        input=collected.input,
        periods=periods,
        k=k,
        first_day=_date(day0, 0),
        period_dates={
            name: (_date(day0, start), _date(day0, end - 1))
            for name, (start, end) in bounds.items()
            if end > start
        },
        rows=collected.rows,
        frauds=collected.frauds,
        test_days_present=len(days_present),
        test_rows_kept=int(kept.sum()),
        test_rows_known_compromised=int((~kept).sum()),
        test_frauds_kept=int(y.sum()),
        invalid=collected.invalid,
        duplicates=collected.duplicates,
        trees=trees,
        variants=variants,
        test_labels=y,
    )


def _card_days(rows: list[_TestRow], scores: list[float], days: Iterable[int]) -> list[CardDay]:
    """The kept test transactions as one CardDay per test day present (known compromised
    cards are already out, so `known` is empty)."""
    by_day: dict[int, tuple[list[str], list[float], list[bool]]] = {d: ([], [], []) for d in days}
    for row, score in zip(rows, scores, strict=True):
        cards, day_scores, day_frauds = by_day[row.day]
        cards.append(row.card)
        day_scores.append(score)
        day_frauds.append(row.fraud)
    return [CardDay(c, s, f) for c, s, f in by_day.values()]


def _train(rows: list[FeatureRow], labels: Any) -> tuple[Any, Any]:
    """LightGBM as `fraudstream train` configures it, on `rows` only, FIXED_ROUNDS rounds."""
    import lightgbm
    import numpy as np

    from consumer.model.scorer import Encoder
    from consumer.model.train import FIXED_ROUNDS, PARAMS

    categories = {
        name: sorted({str(row[FEATURE_NAMES.index(name)]) for row in rows} - {"None"})
        for name in CATEGORICAL_FEATURES
    }
    encoder = Encoder(categories, STREAM_UNAVAILABLE)
    train_set = lightgbm.Dataset(
        encoder.encode(rows),
        label=labels.astype(np.float64),
        feature_name=list(FEATURE_NAMES),
        categorical_feature=list(CATEGORICAL_FEATURES),
    )
    booster = lightgbm.train(PARAMS, train_set, num_boost_round=FIXED_ROUNDS)
    return booster, encoder
