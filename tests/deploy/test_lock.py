"""The dependency locks agree with pyproject.toml and with each other, and the installs use them.

requirements/dev.lock (setup.sh, so CI), requirements/runtime.lock (the image) and
requirements/build.lock (what builds the sdists, installed first by both) come from
scripts/lock.sh. A dependency added to pyproject.toml without running it, a range tightened past
the locked version, or an install that stops reading the lock hash-checked fails here.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCKS = REPO / "requirements"
# The platform the locks are made for (scripts/lock.sh): pyproject markers are judged there.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def read_lock(path: Path) -> dict[NormalizedName, tuple[Version, list[str]]]:
    """name -> (pinned version, sha256 hashes) of a `--generate-hashes` requirements file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[NormalizedName, tuple[Version, list[str]]] = {}
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        requirement = Requirement(words[0])
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}: {words[0]} not =="
        hashes = [w.removeprefix("--hash=sha256:") for w in words[1:] if w.startswith("--hash=")]
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{path.name}: {line}"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{path.name}: {name} pinned twice"
        pins[name] = (Version(specs[0].version), hashes)
    return pins


def pyproject_requirements(*groups: str) -> list[Requirement]:
    """pyproject's requirements ("" for `dependencies`, else an extra), minus the project's own."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found: list[Requirement] = []
    for group in groups:
        lines = project["dependencies"] if group == "" else project["optional-dependencies"][group]
        for line in lines:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
                continue
            if requirement.marker is None or requirement.marker.evaluate(TARGET):
                found.append(requirement)
    return found


def build_requirements() -> list[Requirement]:
    lines = (LOCKS / "build.in").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


DEV = read_lock(LOCKS / "dev.lock")
RUNTIME = read_lock(LOCKS / "runtime.lock")
BUILD = read_lock(LOCKS / "build.lock")


@pytest.mark.parametrize(
    ("lock_name", "groups"),
    [
        ("dev.lock", ("", "model", "dev")),
        ("runtime.lock", ("", "model")),
    ],
)
def test_every_pyproject_dependency_is_locked_within_its_range(
    lock_name: str, groups: tuple[str, ...]
) -> None:
    lock = read_lock(LOCKS / lock_name)
    problems = []
    for requirement in pyproject_requirements(*groups) + build_requirements():
        name = canonicalize_name(requirement.name)
        if name not in lock:
            problems.append(f"{requirement} is not in {lock_name}: run scripts/lock.sh")
            continue
        version, _ = lock[name]
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{lock_name} pins {name}=={version}, outside {requirement}")
    assert problems == []


def test_the_build_lock_holds_build_in() -> None:
    """And what pyproject's [build-system] asks for: the package builds without isolation."""
    build_system = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]
    for requirement in build_requirements() + [Requirement(r) for r in build_system["requires"]]:
        name = canonicalize_name(requirement.name)
        assert name in BUILD, f"{requirement} is not in build.lock: run scripts/lock.sh"
        assert requirement.specifier.contains(BUILD[name][0], prereleases=True)


@pytest.mark.parametrize("lock_name", ["dev.lock", "runtime.lock", "build.lock"])
def test_every_pin_carries_a_hash(lock_name: str) -> None:
    lock = read_lock(LOCKS / lock_name)
    assert lock, f"{lock_name} pins nothing"
    assert [name for name, (_, hashes) in lock.items() if not hashes] == []


def test_the_runtime_is_locked_as_in_the_development_lock() -> None:
    """One resolution: the image runs the versions CI tested, and builds with the same tools."""
    for lock_name, lock in (("runtime.lock", RUNTIME), ("build.lock", BUILD)):
        missing = sorted(set(lock) - set(DEV))
        assert missing == [], f"in {lock_name} but not in dev.lock: {missing}"
        differ = {
            name: (str(version), str(DEV[name][0]))
            for name, (version, _) in lock.items()
            if DEV[name][0] != version
        }
        assert differ == {}, f"{lock_name} vs dev.lock (run scripts/lock.sh): {differ}"
    assert set(BUILD) <= set(RUNTIME), "the image installs build.lock, then runtime.lock"


def test_the_same_version_has_the_same_hashes() -> None:
    for name, (_, hashes) in [*RUNTIME.items(), *BUILD.items()]:
        assert set(hashes) == set(DEV[name][1]), name


def _commands(text: str) -> list[list[str]]:
    """Each simple command of a shell text or RUN line, continuation lines joined."""
    commands: list[list[str]] = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;|\|", stripped):
            try:
                words = shlex.split(part, comments=True)
            except ValueError:
                continue
            if words:
                commands.append(words)
    return commands


def _pip_installs(text: str) -> list[list[str]]:
    installs = []
    for words in _commands(text):
        if "install" in words:
            before = words[: words.index("install")]
            if before and re.fullmatch(r"(.*/)?pip(\d+(\.\d+)?)?", before[-1]):
                installs.append(words[words.index("install") + 1 :])
    return installs


def _reads_lock(installs: list[list[str]], lock: str) -> list[str]:
    found = [args for args in installs if f"requirements/{lock}" in args]
    assert found, f"no `pip install -r requirements/{lock}`"
    return found[0]


def test_setup_installs_the_development_lock_hash_checked() -> None:
    installs = _pip_installs((REPO / "scripts" / "setup.sh").read_text())
    for lock in ("build.lock", "dev.lock"):
        args = _reads_lock(installs, lock)
        assert "--require-hashes" in args and "-r" in args, args
    own = [args for args in installs if "-e" in args and "." in args]
    assert own and all("--no-deps" in args for args in own), installs
    # Nothing else: every other pip install would resolve on its own, unpinned.
    assert len(installs) == 3, installs


def test_the_image_installs_the_runtime_lock_hash_checked() -> None:
    installs = _pip_installs((REPO / "Dockerfile").read_text())
    for lock in ("build.lock", "runtime.lock"):
        args = _reads_lock(installs, lock)
        assert "--require-hashes" in args and "-r" in args, args
    own = [args for args in installs if "." in args]
    assert own and all("--no-deps" in args for args in own), installs
    assert len(installs) == 3, installs


def test_kinesis_mock_is_locked_and_installed_from_the_lock() -> None:
    declared = json.loads((REPO / "package.json").read_text())["dependencies"]
    packages = json.loads((REPO / "package-lock.json").read_text())["packages"]
    assert packages[""]["dependencies"] == declared, "package-lock.json is stale: scripts/lock.sh"
    for name, version in declared.items():
        assert packages[f"node_modules/{name}"]["version"] == version
    for path, entry in packages.items():
        if path:
            assert entry.get("integrity", "").startswith("sha512-"), path
            assert "resolved" not in entry, f"{path}: the lock names no registry"
    setup = _commands((REPO / "scripts" / "setup.sh").read_text())
    npm = [words for words in setup if words[0] == "npm"]
    assert npm and all(words[1] == "ci" for words in npm), npm


def test_the_lock_tool_is_pinned() -> None:
    lock_script = (REPO / "scripts" / "lock.sh").read_text()
    assert re.search(r"^UV_VERSION=\d+\.\d+\.\d+$", lock_script, re.M)
