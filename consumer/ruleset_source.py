"""The rule set in force, and its hot reload from a file or an S3 object.

Analysts change rules without a redeploy: every worker checks the rule set's source every
`check_every_s` seconds (a stat of the file, or a conditional GET of the S3 object by ETag) at the
start of a batch, so a new valid version judges from the next batch on, on every worker. A new
version that does not load, or that this worker cannot honour, is refused with a log line and a
metric, and the version in force stays. Nothing is ever half-applied: a batch is judged by one
version, which every flagged line and alert names (`rules_version`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from decimal import Decimal

from consumer.hot_source import (
    Fetched,
    Fetcher,
    FileFetcher,
    HotReload,
    S3Fetcher,
    fetcher_for,
)
from consumer.rules.config import RulesConfig
from consumer.rules.ruleset import RuleSet, RuleSetError
from consumer.rules.ruleset_load import load_ruleset

# The fetchers live in consumer/hot_source.py (the model reloads through them too).
__all__ = [
    "Fetched",
    "Fetcher",
    "FileFetcher",
    "RuleSetRefused",
    "RuleSetSource",
    "S3Fetcher",
    "builtin_ruleset",
    "fetcher_for",
]


def builtin_ruleset(config: RulesConfig) -> RuleSet:
    """The seven contract rules as configured by FRAUD_RULES_FILE / FRAUD_RULE_*: version
    `builtin` at the defaults, else `builtin-<digest of the settings>`, so every line still says
    which thresholds judged it."""
    if config == RulesConfig():
        return RuleSet("builtin", config)
    digest = hashlib.sha256(repr(config).encode()).hexdigest()[:12]
    return RuleSet(f"builtin-{digest}", config)


class RuleSetRefused(ValueError):
    """A rule set this worker will not apply; the message says why."""


class RuleSetSource:
    """Holds the rule set in force and swaps in a new valid version when its source changes."""

    def __init__(
        self,
        fetcher: Fetcher[bytes] | None,
        check_every_s: float,
        max_horizon_s: Decimal | None = None,
        clock: Callable[[], float] = time.monotonic,
        fallback: RuleSet | None = None,
    ) -> None:
        self._reload: HotReload[bytes, RuleSet] | None = None
        if fetcher is None:
            if fallback is None:
                raise ValueError("a rule set source needs a fetcher or a fallback rule set")
            initial = fallback
        else:
            fetched = fetcher.fetch(None)
            if fetched is None:  # cannot happen without a tag; keeps the types honest
                raise RuleSetRefused(f"{fetcher.name}: nothing to read")
            initial = self._load(fetcher, fetched)
            self._reload = HotReload(
                "ruleset",
                fetcher,
                check_every_s,
                lambda candidate: self._admit(self._load(fetcher, candidate)),
                lambda ruleset: ruleset.version,
                initial,
                fetched.tag,
                refusals=(RuleSetError, RuleSetRefused),
                clock=clock,
            )
        self._fallback = initial
        # History kept in Redis is sized for the rule set the worker started with.
        self.max_horizon_s = max_horizon_s if max_horizon_s is not None else initial.state_horizon_s

    @property
    def ruleset(self) -> RuleSet:
        return self._fallback if self._reload is None else self._reload.value

    @property
    def last_refusal(self) -> str | None:
        """Why the newest version was refused, if it was."""
        return None if self._reload is None else self._reload.last_refusal

    def current(self) -> RuleSet:
        """The rule set for this batch: checks the source when the interval has passed."""
        return self._fallback if self._reload is None else self._reload.current()

    @staticmethod
    def _load(fetcher: Fetcher[bytes], fetched: Fetched[bytes]) -> RuleSet:
        # Country features included: the state store keeps every account's countries.
        return load_ruleset(fetched.data, name=fetcher.name)

    def _admit(self, candidate: RuleSet) -> RuleSet:
        """A new version must say so, and must not need more history than this worker keeps."""
        if candidate.version == self.ruleset.version:
            raise RuleSetRefused(
                f"the content changed but the version is still {candidate.version!r}: "
                "bump `version` so every decision names the rules that made it"
            )
        if candidate.state_horizon_s > self.max_horizon_s:
            raise RuleSetRefused(
                f"version {candidate.version!r} needs {candidate.state_horizon_s} s of history; "
                f"this worker keeps {self.max_horizon_s} s (restart the workers to apply it)"
            )
        return candidate
