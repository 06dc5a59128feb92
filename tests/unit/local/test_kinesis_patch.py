"""The kinesis-mock patch (consumer/local/kinesis_patch.py) is made for one build: the pinned one.

These fail when the installed package (package-lock.json's kinesis-local) is not the build the
patch's literals were taken from: re-check the patch against the new build, then update
KINESIS_MOCK_SHA256.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from consumer.local import kinesis_patch
from consumer.local.kinesis_patch import (
    KINESIS_MOCK_SHA256,
    KinesisPatchError,
    patch_kinesis_mock,
    patches,
)
from consumer.local.stack import REPO_ROOT, StackError, StackOptions, loopback_kinesis_mock

PINNED = REPO_ROOT / "node_modules" / "kinesis-local" / "main.js"


@pytest.fixture(scope="module")
def pinned() -> bytes:
    if not PINNED.is_file():
        pytest.fail(f"{PINNED} missing: run scripts/setup.sh")
    return PINNED.read_bytes()


def test_the_lock_pins_the_version_the_patch_was_made_for() -> None:
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/kinesis-local"]["version"] == "0.6.2"


def test_the_installed_build_is_the_one_the_patch_was_made_for(pinned: bytes) -> None:
    assert kinesis_patch.sha256(pinned) == KINESIS_MOCK_SHA256


def test_each_patched_literal_is_in_the_pinned_build_once(pinned: bytes) -> None:
    script = pinned.decode("utf-8")
    for patch in patches("127.0.0.1"):
        assert script.count(patch.original) == 1, patch.name
        assert patch.original != patch.replacement


def test_the_patched_script_is_valid_javascript(pinned: bytes, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node missing: install Node.js 20")
    patched = patch_kinesis_mock(pinned, "127.0.0.1")
    for patch in patches("127.0.0.1"):
        assert patch.original not in patched
        assert patched.count(patch.replacement) == 1
    assert '.em("0.0.0.0")' not in patched
    (tmp_path / "main.js").write_text(patched, encoding="utf-8")
    subprocess.run([node, "--check", str(tmp_path / "main.js")], check=True)


def test_another_build_is_refused(pinned: bytes) -> None:
    changed = pinned.replace(b'.em("0.0.0.0")', b'.em("0.0.0.1")')
    with pytest.raises(KinesisPatchError, match="not the pinned build"):
        patch_kinesis_mock(changed, "127.0.0.1")


def test_the_stack_refuses_to_start_an_unpatchable_build(
    pinned: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other" / "main.js"
    other.parent.mkdir()
    other.write_bytes(pinned + b"\n// a newer build\n")
    monkeypatch.setenv("FRAUD_KINESIS_MOCK_JS", str(other))
    with pytest.raises(StackError, match="expected"):
        loopback_kinesis_mock(StackOptions(state_dir=tmp_path / "state"))
    assert not (tmp_path / "state" / "kinesis-mock" / "main.js").exists()


def test_the_stack_writes_the_patched_copy(pinned: bytes, tmp_path: Path) -> None:
    written = loopback_kinesis_mock(StackOptions(state_dir=tmp_path))
    assert written.read_text(encoding="utf-8") == patch_kinesis_mock(pinned, "127.0.0.1")
    assert (written.parent / "server.json").is_file()
