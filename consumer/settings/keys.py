"""Which FRAUD_* variables exist, so that a typo in one stops start-up instead of being ignored.

An unknown FRAUD_* variable one typo away from a known one (FRAUD_ALERT_SEVERTY) stops
`fraudstream worker`: the setting it meant would silently keep its default. Any other unknown
FRAUD_* variable is only a warning: a task's environment may carry variables for other versions
or tools. FRAUD_RULE_* variables are checked, strictly, by consumer.settings.rules.
"""

from __future__ import annotations

from collections.abc import Mapping

from consumer.settings.config import ConfigError

__all__ = ["KNOWN_KEYS", "check_environment"]

# Every FRAUD_* variable something in this project reads (FRAUD_RULE_* are checked by
# consumer.settings.rules). tests/unit/worker/test_startup_config.py keeps this list complete.
KNOWN_KEYS: frozenset[str] = frozenset(
    {
        # consumer.settings.config
        "FRAUD_BUCKET",
        "FRAUD_TOPIC_ARN",
        "FRAUD_REDIS_CLUSTER",
        "FRAUD_PREFIX",
        "FRAUD_ALERT_SEVERITY",
        "FRAUD_ALERT_PROCESS",
        "FRAUD_RULES_FILE",
        "FRAUD_FLUSH_MAX_RECORDS",
        "FRAUD_FLUSH_MAX_BYTES",
        "FRAUD_FLUSH_MAX_AGE_S",
        "FRAUD_RETRY_MAX_ATTEMPTS",
        "FRAUD_RETRY_MAX_WAIT_S",
        "FRAUD_RETRY_DEADLINE_S",
        "FRAUD_STATE_LATENESS_S",
        "FRAUD_DEDUP_TTL_S",
        "FRAUD_STATE_MEMORY_TTL_S",
        "FRAUD_STATE_MAX_ENTRIES",
        "FRAUD_STATE_CACHE_ACCOUNTS",
        "FRAUD_STATE_CACHE_ENTRIES",
        "FRAUD_PROFILES",
        "FRAUD_PROFILE_LABELS_REFRESH_S",
        "FRAUD_LOG_LEVEL",
        "FRAUD_TIMESTAMP_MAX_AHEAD_S",
        "FRAUD_RULESET",
        "FRAUD_RULESET_CHECK_S",
        "FRAUD_RULESET_LAST_GOOD",
        "FRAUD_DECISIONS",
        "FRAUD_MODEL_DIR",
        "FRAUD_MODEL_THRESHOLD",
        "FRAUD_MODEL_SEVERITY",
        "FRAUD_MODEL_SHADOW",
        "FRAUD_MODEL_CHECK_S",
        "FRAUD_LABELS_POLL_S",
        "FRAUD_LABELS_PREFIX",
        "FRAUD_METRICS_ENABLED",
        "FRAUD_METRICS_NAMESPACE",
        "FRAUD_METRICS_INTERVAL_S",
        "FRAUD_METRICS_MODE",
        # the daemon and the worker command
        "FRAUD_STREAM",
        "FRAUD_APP_NAME",
        "FRAUD_KCL_PROFILE",
        "FRAUD_WORKER_ID",
        "FRAUD_PROPERTIES_OUT",
        "FRAUD_PROPERTIES_DIR",
        "FRAUD_JAVA",
        "FRAUD_JVM_OPTIONS",
        # the local stack (its workers inherit its environment)
        "FRAUD_STATE_DIR",
        "FRAUD_KINESIS_PORT",
        "FRAUD_KINESIS_TLS_PORT",
        "FRAUD_MOTO_PORT",
        "FRAUD_REDIS_PORT",
        "FRAUD_KINESIS_MOCK_JS",
        "FRAUD_ALERTS_QUEUE_URL",
        # `local up --api`: where the local API listens and its dev key (local.env, for curl)
        "FRAUD_API_URL",
        "FRAUD_API_KEY",
        # the scoring API (consumer/api/settings.py)
        "FRAUD_API_KEYS_FILE",
        "FRAUD_API_KEYS_SECRET",
        "FRAUD_API_KEYS_REFRESH_S",
        "FRAUD_API_RATE",
        "FRAUD_API_BURST",
        # `fraudstream ingest` (consumer/cli/ingest.py): the CSV column mapping of the ECS task
        "FRAUD_INGEST_MAPPING",
        # `fraudstream report` (consumer/report/): its log level, its temporary database's folder
        "FRAUD_REPORT_LOG_LEVEL",
        "FRAUD_REPORT_TMP",
    }
)


def check_environment(env: Mapping[str, str]) -> list[str]:
    """Warnings for unknown FRAUD_* variables; ConfigError for one that looks like a typo."""
    warnings: list[str] = []
    for key in sorted(env):
        if not key.startswith("FRAUD_") or key in KNOWN_KEYS or key.startswith("FRAUD_RULE_"):
            continue
        close = sorted(known for known in KNOWN_KEYS if _one_typo_apart(key, known))
        if close:
            raise ConfigError(f"{key}: unknown setting; did you mean {close[0]}?")
        warnings.append(f"{key}: unknown setting, ignored")
    return warnings


def _one_typo_apart(a: str, b: str) -> bool:
    """One letter inserted, deleted, replaced, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    if len(a) == len(b):
        if a[start + 1 :] == b[start + 1 :]:
            return True  # replaced
        return (
            a[start : start + 2] == b[start : start + 2][::-1] and a[start + 2 :] == b[start + 2 :]
        )
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[start + 1 :] == shorter[start:]
