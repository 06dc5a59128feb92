"""API keys: stored hashed, several at once, re-read while the API runs.

Why this shape:
- **Hashed.** The keys' document holds the sha256 of each key, never the key, so the file or
  the secret leaking gives no one a working key. A key is 32 random bytes (256 bits): a plain
  sha256 is enough, there is nothing to brute-force, and it costs about a microsecond a request
  (a password hash would cost milliseconds).
- **Several at once, re-read.** Rotation is: add the new key's entry, move the callers, remove
  the old entry; the API re-reads the document every FRAUD_API_KEYS_REFRESH_S (60 s), so no
  restart is needed. A document that cannot be read or is invalid keeps the keys in force
  (logged, counted): a typo in the secret must not lock every caller out.
- **Constant time.** The presented key's hash is compared with every stored hash by
  `hmac.compare_digest`, all of them, whichever matches: the time says nothing about which
  prefix was right.

The document (a file, FRAUD_API_KEYS_FILE, or a Secrets Manager SecretString,
FRAUD_API_KEYS_SECRET)::

    {"keys": [{"id": "gateway-2026-12", "sha256": "<64 hex digits>",
               "rate_per_s": 500, "burst": 1000}]}

`rate_per_s` and `burst` are optional (FRAUD_API_RATE / FRAUD_API_BURST by default).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consumer.errors import FraudstreamError
from consumer.infra.logs import get_logger
from consumer.infra.metrics import METRICS

__all__ = ["ApiKey", "KeyRing", "KeysError", "hash_key", "new_key", "parse_keys"]

log = get_logger(__name__)

KEY_PREFIX = "fsk_"  # recognisable in a leaked paste (secret scanners), never part of the hash
_HEX = frozenset("0123456789abcdef")


class KeysError(FraudstreamError, ValueError):
    """The keys' document cannot be read or is invalid; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One accepted key: its name (in logs and metrics, never the key), its hash, its limits."""

    id: str
    sha256: bytes
    rate_per_s: float | None = None
    burst: int | None = None


def hash_key(key: str) -> str:
    """The hex sha256 of a key, as the document stores it."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(name: str) -> tuple[str, dict[str, Any]]:
    """A fresh key and the document entry that accepts it."""
    if not name or len(name) > 128 or not name.isprintable():
        raise KeysError(f"key id: must be 1..128 printable characters, got {name!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, {"id": name, "sha256": hash_key(key)}


def _limit(entry: dict[str, Any], field: str, where: str, whole: bool) -> Any:
    value = entry.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise KeysError(f"{where}.{field}: must be a positive number, got {value!r}")
    if whole and value != int(value):
        raise KeysError(f"{where}.{field}: must be a whole number, got {value!r}")
    return int(value) if whole else float(value)


def parse_keys(text: str | bytes, source: str) -> list[ApiKey]:
    """The keys of a document; KeysError naming the entry and field that is wrong."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise KeysError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeysError(f'{source}: must be a JSON object {{"keys": [...]}}')
    keys: list[ApiKey] = []
    seen: set[str] = set()
    for index, entry in enumerate(document["keys"]):
        where = f"{source}: keys[{index}]"
        if not isinstance(entry, dict):
            raise KeysError(f"{where}: must be an object")
        key_id, digest = entry.get("id"), entry.get("sha256")
        if not isinstance(key_id, str) or not key_id or len(key_id) > 128:
            raise KeysError(f"{where}.id: must be a string of 1..128 characters")
        if key_id in seen:
            raise KeysError(f"{where}.id: {key_id!r} appears twice")
        seen.add(key_id)
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
            raise KeysError(f"{where}.sha256: must be 64 lower-case hex digits (sha256 of the key)")
        keys.append(
            ApiKey(
                key_id,
                bytes.fromhex(digest),
                _limit(entry, "rate_per_s", where, whole=False),
                _limit(entry, "burst", where, whole=True),
            )
        )
    return keys


class KeyRing:
    """The keys in force, re-read from `read` every `refresh_s` (on a background thread)."""

    def __init__(
        self,
        read: Callable[[], str | bytes],
        source: str,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Reads the document once now: KeysError when it cannot be used at start."""
        self._read = read
        self.source = source
        self._refresh_s = refresh_s
        self._clock = clock
        self._keys = self._load()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load(self) -> list[ApiKey]:
        try:
            text = self._read()
        except KeysError:
            raise
        except Exception as exc:
            raise KeysError(f"{self.source}: cannot be read ({exc})") from exc
        return parse_keys(text, self.source)

    @property
    def keys(self) -> list[ApiKey]:
        return self._keys

    def refresh(self) -> bool:
        """Read the document again; True when it was used. A failure keeps the keys in force."""
        try:
            keys = self._load()
        except KeysError as exc:
            METRICS.incr("api.keys.refresh_failed")
            log.warning("api_keys_refresh_failed", source=self.source, error=str(exc))
            return False
        if [k.id for k in keys] != [k.id for k in self._keys] or keys != self._keys:
            log.info("api_keys_loaded", source=self.source, ids=[k.id for k in keys])
        self._keys = keys  # one reference swap: readers see the old list or the new one
        return True

    def start(self) -> None:
        """Re-read every `refresh_s` on a daemon thread (never on a request's path)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="api-keys", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_s):
            self.refresh()

    def match(self, presented: str) -> ApiKey | None:
        """The key whose hash is the presented key's, comparing with every key in force."""
        digest = hashlib.sha256(presented.encode()).digest()
        found: ApiKey | None = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found


def file_reader(path: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with open(path, "rb") as handle:
            return handle.read()

    return read


def secret_reader(secret_id: str, client: Callable[[], Any]) -> Callable[[], str]:
    """The SecretString of a Secrets Manager secret (its ARN or name), current version."""

    def read() -> str:
        reply = client().get_secret_value(SecretId=secret_id)
        text = reply.get("SecretString")
        if not isinstance(text, str):
            raise KeysError(
                f"secret {secret_id}: has no SecretString (binary secrets are not read)"
            )
        return text

    return read
