"""`python -m bench.expressions [--json]`: what custom rules cost per transaction.

Pure CPU, no servers: realistic generated traffic (load_test.synthetic) is parsed and paired with
each transaction's history (its account's earlier transactions, as the state store hands them
over), then timed, best of --repeat passes:
- compile: one `when` condition parsed, checked and turned into closures (once per rule set load);
- each condition alone: Facts built and the condition tested, per transaction (history features
  computed on first use, as in the stream);
- judge (the seven contract rules) against judge_with_ruleset with the default rule set and with
  a rule set of typical custom rules (live and shadow), per transaction.
The human table goes to stderr; with --json one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.workload import START, SimulatedClock
from consumer.records import Transaction, parse_transaction
from consumer.rules import AccountHistory, HistoryEntry, RulesConfig, judge
from consumer.rules.expressions import compile_expression
from consumer.rules.features import Facts, FeaturePlan
from consumer.rules.ruleset import CustomRule, RuleSet, judge_with_ruleset
from consumer.rules.ruleset_load import default_ruleset
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
    args = p.parse_args(argv)

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


if __name__ == "__main__":
    raise SystemExit(main())
