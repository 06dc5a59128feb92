"""`python -m bench.expressions [--json] [--worst]`: what custom rules cost per transaction.

Pure CPU, no servers: realistic generated traffic (load_test.synthetic) is parsed and paired with
each transaction's history (its account's earlier transactions, as the state store hands them
over), then timed, best of --repeat passes:
- compile: one `when` condition parsed, checked and turned into closures (once per rule set load);
- each condition alone: Facts built and the condition tested, per transaction (history features
  computed on first use, as in the stream);
- judge (the seven contract rules) against judge_with_ruleset with the default rule set and with
  a rule set of typical custom rules (live and shadow), per transaction.
The human table goes to stderr; with --json one JSON object is the last line of stdout.

`--worst` measures the other end instead: the most expensive rule sets
the loader accepts (every limit of docs/rules-as-data.md#limits at its bound, every rule
evaluated to its end and firing) judging worst-case valid records against a full history
(FRAUD_STATE_MAX_ENTRIES entries, all within 24 h, long event-time fractions), per
transaction, with the time to load each rule set.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from bench.workload import START, SimulatedClock
from consumer.records import Transaction, parse_transaction
from consumer.rules import AccountHistory, HistoryEntry, RulesConfig, judge
from consumer.rules.expressions import (
    MAX_LENGTH,
    MAX_LIST_ITEMS,
    MAX_NODES,
    compile_expression,
)
from consumer.rules.features import WINDOWS, Facts, FeaturePlan
from consumer.rules.ruleset import CustomRule, RuleSet, judge_with_ruleset
from consumer.rules.ruleset_load import (
    MAX_RULES,
    MAX_TOTAL_NODES,
    default_ruleset,
    load_ruleset,
)
from consumer.settings.config import StateConfig
from load_test.synthetic import generate_records

CONDITIONS: dict[str, tuple[str, str]] = {
    # name: (severity, when)
    "big_online": ("high", 'amount > 5000 and channel == "online"'),
    "burst_then_big": ("high", "amount > 2000 and txn_count_1h >= 3"),
    "foreign_atm": (
        "medium",
        'channel == "atm" and destination_country not in ["DE", "FR", "NL", "US"]',
    ),
    "fast_spend_24h": ("medium", "amount_sum_24h > 20000 or txn_count_24h > 50"),
    "night_new_device": ("high", "new_device and (hour_of_day < 5 or hour_of_day >= 23)"),
    "far_and_fast": ("high", "km_from_last >= 500 and speed_kmh_from_last > 600"),
    "drain": ("high", "account_balance is not None and amount > 0.95 * account_balance"),
}
SHADOW = {"far_and_fast", "drain"}


def _log(text: str = "") -> None:
    sys.stderr.write(text + "\n")


def workload(count: int, accounts: int, seed: int) -> list[tuple[Transaction, AccountHistory]]:
    """Transactions with the history each saw (at most the last 200 of its account)."""
    earlier: dict[str, list[Transaction]] = {}
    out: list[tuple[Transaction, AccountHistory]] = []
    seen_devices: dict[str, set[str]] = {}
    seen_countries: dict[str, set[str]] = {}
    # The hot-path benchmark's event-time clock: accounts / 40 records/s, so an ordinary account
    # pays about every 40 s and the contract rules fire on the fraud share, not on everything.
    clock = SimulatedClock(START, accounts / 40)
    records = generate_records(count, accounts=accounts, fraud_ratio=0.05, seed=seed, now=clock)
    for record in records:
        t = parse_transaction(record.data)
        if not isinstance(t, Transaction):
            continue
        mine = earlier.setdefault(t.account_id, [])
        devices = seen_devices.setdefault(t.account_id, set())
        countries = seen_countries.setdefault(t.account_id, set())
        recent = [
            HistoryEntry(
                (i, 0), e.event_time, e.amount, e.latitude, e.longitude, e.destination_country
            )
            for i, e in enumerate(mine[-200:])
        ]
        out.append(
            (
                t,
                AccountHistory(
                    recent=recent,
                    device_seen_before=t.device_id in devices,
                    has_earlier=bool(mine),
                    country_seen_before=t.destination_country in countries,
                ),
            )
        )
        mine.append(t)
        if t.device_id is not None:
            devices.add(t.device_id)
        if t.destination_country is not None:
            countries.add(t.destination_country)
    return out


def best_of(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.expressions", description=__doc__)
    p.add_argument("--transactions", type=int, default=20_000)
    p.add_argument("--accounts", type=int, default=500)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--worst",
        action="store_true",
        help="the worst accepted rule sets against a full history",
    )
    p.add_argument(
        "--entries",
        type=int,
        default=StateConfig().max_entries,
        help="--worst: history entries (default FRAUD_STATE_MAX_ENTRIES' default)",
    )
    args = p.parse_args(argv)
    if args.worst:
        report = measure_worst(entries=args.entries, repeat=args.repeat)
        if args.json:
            sys.stdout.write(json.dumps(report) + "\n")
        return 0

    work = workload(args.transactions, args.accounts, args.seed)
    n = len(work)
    mean_history = sum(len(h.recent) for _, h in work) / n
    result: dict[str, Any] = {
        "transactions": n,
        "mean_history_entries": round(mean_history, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }

    compile_runs = 200
    source = CONDITIONS["burst_then_big"][1]
    seconds = best_of(
        args.repeat, lambda: [compile_expression(source) for _ in range(compile_runs)]
    )
    result["compile_us"] = round(seconds / compile_runs * 1e6, 1)

    per_condition: dict[str, float] = {}
    for name, (_, when) in CONDITIONS.items():
        expression = compile_expression(when)
        plan = FeaturePlan.for_names(frozenset(expression.names))
        test = expression.test

        def run(test: Callable[[Facts], bool] = test, plan: FeaturePlan = plan) -> None:
            for t, h in work:
                test(Facts(t, h, plan))

        per_condition[name] = round(best_of(args.repeat, run) / n * 1e6, 2)
    result["condition_us"] = per_condition

    config = RulesConfig()
    default = default_ruleset()
    rules = [
        CustomRule(name, name, severity, compile_expression(when), shadow=name in SHADOW)
        for name, (severity, when) in CONDITIONS.items()
    ]
    custom = RuleSet("bench-1", config, rules)
    # Interleaved, best of each: on a shared machine, timing one variant after the other
    # measures the load as much as the code.
    variants: dict[str, Callable[[], object]] = {
        "judge": lambda: [judge(t, h, config) for t, h in work],
        "default": lambda: [judge_with_ruleset(t, h, default) for t, h in work],
        "custom": lambda: [judge_with_ruleset(t, h, custom) for t, h in work],
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.repeat):
        for key, run_variant in variants.items():
            best[key] = min(best[key], best_of(1, run_variant))
    judge_s, default_s, custom_s = best["judge"], best["default"], best["custom"]
    result["judge_us"] = round(judge_s / n * 1e6, 2)
    result["ruleset_default_us"] = round(default_s / n * 1e6, 2)
    result["ruleset_7_custom_us"] = round(custom_s / n * 1e6, 2)
    result["custom_rules_us_per_rule"] = round((custom_s - judge_s) / n / len(rules) * 1e6, 2)
    result["contract_flagged"] = sum(judge(t, h, config).flagged for t, h in work)
    hits = [judge_with_ruleset(t, h, custom) for t, h in work]
    result["live_hits"] = sum(len(r.custom) for r in hits)
    result["shadow_hits"] = sum(len(r.shadow) for r in hits)

    _log(
        f"{n} transactions ({result['contract_flagged']} flagged by the contract rules),"
        f" {mean_history:.1f} history entries on average, best of {args.repeat}"
    )
    _log(f"compile one condition                 {result['compile_us']:8.1f} us")
    for name, micros in per_condition.items():
        _log(f"condition {name:<28}{micros:8.2f} us / txn   {CONDITIONS[name][1]}")
    _log(f"judge (7 contract rules)              {result['judge_us']:8.2f} us / txn")
    _log(f"judge_with_ruleset, default rule set  {result['ruleset_default_us']:8.2f} us / txn")
    _log(
        f"judge_with_ruleset, + {len(rules)} custom rules  {result['ruleset_7_custom_us']:8.2f}"
        f" us / txn ({result['custom_rules_us_per_rule']:.2f} us per custom rule;"
        f" {result['live_hits']} live hits, {result['shadow_hits']} shadow hits)"
    )
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


# -- the worst accepted rule sets (--worst) ----------------------------------------------------

FRACTION = "1234567890" * 3  # 30 digits: event times keep every digit of their fraction
# Amounts at the record bounds (0 < amount <= 1e9, multiples of 1e-18) and the balance's.
TOP_AMOUNT = "999999999.999999999999999999"
TINY = "0.000000000000000001"
BALANCE = "999999999999999.999999999999999999"
COUNTRIES = [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(60)]


def worst_record(amount: str = TOP_AMOUNT, balance: str = "-" + BALANCE) -> Transaction:
    """A valid record with every optional field, numbers at their bounds and long fractions."""
    fields = {
        "transaction_id": "t-worst",
        "account_id": "acct-worst",
        "timestamp": f"2026-11-28T12:00:00.{FRACTION}Z",
        "currency": "USD",
        "origin_country": "US",
        "destination_country": "FR",
        "latitude": 48.8566,
        "longitude": 2.3522,
        "merchant_id": "m-1",
        "merchant_category": "5411",
        "channel": "online",
        "device_id": "device-new",
        "ip_address": "192.0.2.1",
        "account_created_at": f"2001-02-03T04:05:06.{FRACTION[::-1]}Z",
    }
    body = json.dumps(fields)[1:-1]
    data = f'{{"amount": {amount}, "account_balance": {balance}, {body}}}'.encode()
    parsed = parse_transaction(data)
    assert isinstance(parsed, Transaction), parsed
    return parsed


def full_history(txn: Transaction, entries: int, order: str = "ascending") -> AccountHistory:
    """`entries` earlier transactions spread over the 24 hours before `txn` (so the 24 h window
    holds them all, the 1 h one ~1/24 of them), amounts at both bounds, long fractions, located,
    many countries. `order`: "ascending" (in-order traffic), "late" (one late record: the
    history no longer known to be in order) or "shuffled" (event times in random order)."""
    t = txn.event_time
    step = Decimal(86400) / (entries + 1)
    recent = [
        HistoryEntry(
            (index, 0),
            t - 86400 + step * (index + 1) + Decimal("0." + FRACTION) / 10**6,
            Decimal(TOP_AMOUNT if index % 2 else TINY),
            40.0 + index % 50 * 0.1,
            -70.0 + index % 30 * 0.1,
            COUNTRIES[index % len(COUNTRIES)],
        )
        for index in range(entries)
    ]
    if order == "late" and entries > 2:
        late = recent.pop(entries // 2)
        recent.append(HistoryEntry((entries, 0), late.event_time, late.amount, None, None))
    elif order == "shuffled":
        times = [entry.event_time for entry in recent]
        random.Random(7).shuffle(times)
        recent = [
            HistoryEntry(e.position, at, e.amount, e.latitude, e.longitude, e.country)
            for e, at in zip(recent, times, strict=True)
        ]
    return AccountHistory(
        recent=recent,
        device_seen_before=False,
        has_earlier=True,
        country_seen_before=False,
        ascending=order == "ascending",
    )


# Contract parameters at the bounds that cost most: 30-day windows (the whole history is read),
# the slowest speed (the longest reach), and every rule firing.
WORST_CONTRACT = """\
rules:
  high_amount: {threshold: "0.000000000000000001"}
  velocity: {max_count: 1, window_s: "2592000"}
  low_balance_high_amount: {min_amount: "0.000000000000000001", ratio: "0.000000000000000001"}
  impossible_travel: {min_distance_km: "0.000000000000000001", max_speed_kmh: 30}
  card_testing: {max_amount: "1000000000000000", min_count: 1, window_s: "2592000"}
  new_device_high_amount: {min_amount: "0.000000000000000001"}
"""

# Every name a condition can read, grouped so that a condition reading them is true on the
# worst record: numbers added up, strings and flags compared.
_NUMBERS = [
    "amount",
    "account_balance",
    "latitude",
    "longitude",
    *(f"{family}_{w}" for w in WINDOWS for family in ("txn_count", "amount_sum")),
    *(f"distinct_countries_{w}" for w in WINDOWS),
    "km_from_last",
    "speed_kmh_from_last",
    "account_age_s",
    "hour_of_day",
]


def _worst_conditions(kind: str, budget: int) -> list[str]:
    """Conditions of one shape, each within MAX_NODES, together within `budget` nodes."""
    conditions: list[str] = []
    if kind == "names":  # every name read (the longest reasons), arithmetic on all numbers
        numbers = " + ".join(_NUMBERS)
        text = (
            f"({numbers}) != 0.5 and currency == 'USD' and channel == 'online'"
            " and merchant_id != 'x' and merchant_category != 'x' and origin_country != 'XX'"
            " and destination_country != 'XX' and device_id != 'x' and ip_address != 'x'"
            " and new_device and new_country and not first_transaction"
        )
        conditions = [text]
    elif kind == "arithmetic":  # divisions and products of long-digit values, nested
        term = (
            "(account_age_s / 7 * account_balance - amount_sum_24h / 3 * amount"
            " + account_age_s * account_age_s / 11)"
        )
        text = f"{term} * {term} / {term} != 0.5 and {term} - {term} * 2 != 0.25"
        conditions = [text]
    elif kind == "lists":  # membership in the longest lists (hashing a long decimal each time)
        members = ", ".join(str(i) for i in range(MAX_LIST_ITEMS))
        conditions = [f"account_age_s not in [{members}]"]
    elif kind == "small":  # as many rules as allowed: per-rule overhead and many reasons
        conditions = ["amount > 0 and txn_count_24h > 1"]
    nodes = compile_expression(conditions[0]).nodes
    count = min(MAX_RULES, budget // nodes)
    return conditions * count


def worst_ruleset_text(kind: str, description_chars: int = 500) -> str:
    """A rule set at the limits: the contract rules at their costliest bounds, and as many
    custom rules of one shape as the rule-count and total-node limits allow, half of them
    shadow, every one true on worst_record()."""
    lines = [f'version: "worst-{kind}"', WORST_CONTRACT.rstrip(), "custom:"]
    description = ("why " * description_chars)[:description_chars]
    for index, when in enumerate(_worst_conditions(kind, MAX_TOTAL_NODES)):
        lines += [
            f"  - id: r{index:03d}",
            f"    description: {json.dumps(description)}",
            "    severity: high",
            f"    shadow: {'true' if index % 2 else 'false'}",
            f"    when: {json.dumps(when)}",
        ]
    return "\n".join(lines) + "\n"


def measure_worst(entries: int, repeat: int) -> dict[str, Any]:
    """Per-transaction cost of the worst rule sets (judge_with_ruleset, best of `repeat`
    interleaved passes of 50 judgements) on worst records against full histories in three
    orders, in microseconds; and the time to load each rule set, best of `repeat`."""
    result: dict[str, Any] = {
        "entries": entries,
        "limits": {
            "rules": MAX_RULES,
            "nodes_per_rule": MAX_NODES,
            "nodes_total": MAX_TOTAL_NODES,
            "list_items": MAX_LIST_ITEMS,
            "condition_chars": MAX_LENGTH,
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    records = {
        "amount 1e9, balance -1e15": worst_record(),
        "amount 1e-18, balance 1e15": worst_record(TINY, BALANCE),
    }
    sets: dict[str, RuleSet] = {"default": default_ruleset()}
    load_ms: dict[str, float] = {}
    for kind in ("names", "arithmetic", "lists", "small"):
        text = worst_ruleset_text(kind).encode()
        seconds = best_of(repeat, functools.partial(load_ruleset, text, "yaml"))
        ruleset = load_ruleset(text, "yaml")
        load_ms[kind] = round(seconds * 1e3, 1)
        sets[kind] = ruleset
        _log(
            f"rule set {kind:<11} {len(ruleset.custom):3d} custom rules,"
            f" {sum(r.when.nodes for r in ruleset.custom):4d} nodes, {len(text):6d} bytes,"
            f" loads in {load_ms[kind]:6.1f} ms"
        )
    contract_only = load_ruleset(f'version: "worst-contract"\n{WORST_CONTRACT}'.encode(), "yaml")
    sets["contract_bounds"] = contract_only
    result["load_ms"] = load_ms
    timings: dict[str, dict[str, float]] = {}
    per_pass = 50
    for order in ("ascending", "late", "shuffled"):
        for record_name, txn in records.items():
            history = full_history(txn, entries, order)
            for set_name, ruleset in sets.items():
                decision = judge_with_ruleset(txn, history, ruleset)
                assert not getattr(decision, "rule_errors", ()), (set_name, decision)
                fired = len(decision.custom) + len(decision.shadow)
                assert fired == len(ruleset.custom), (set_name, fired)
            # Interleaved, best of each: on a shared machine, timing one rule set after the
            # other measures the load as much as the code.
            best = dict.fromkeys(sets, float("inf"))
            for _ in range(repeat):
                for set_name, ruleset in sets.items():
                    start = time.perf_counter()
                    for _ in range(per_pass):
                        judge_with_ruleset(txn, history, ruleset)
                    best[set_name] = min(best[set_name], time.perf_counter() - start)
            row = {name: round(seconds / per_pass * 1e6, 1) for name, seconds in best.items()}
            key = f"{order}, {record_name}"
            timings[key] = row
            _log(f"{key:<42} " + "  ".join(f"{k} {v:7.1f}" for k, v in row.items()))
    result["judge_us"] = timings
    worst = max(
        (us, order, name)
        for order, row in timings.items()
        for name, us in row.items()
        if name not in ("default", "contract_bounds")
    )
    result["worst_judge_us"] = {"us": worst[0], "history": worst[1], "rule_set": worst[2]}
    _log(f"worst: {worst[0]:.1f} us per transaction ({worst[2]} rule set; {worst[1]})")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
