"""scripts/check_dockerfile.py: the real Dockerfile passes; each way of breaking it is caught."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_dockerfile", REPO / "scripts" / "check_dockerfile.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def _problems(context: Path) -> list[str]:
    found = checker.Checker(context / "Dockerfile", context).run()
    return [p.render("Dockerfile") for p in found]


@pytest.fixture()
def context(tmp_path: Path) -> Path:
    """A copy of what the image build reads: Dockerfile, .dockerignore and the copied sources."""
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "requirements", tmp_path / "requirements", ignore=ignore)
    shutil.copytree(REPO / "consumer", tmp_path / "consumer", ignore=ignore)
    shutil.copytree(REPO / "properties", tmp_path / "properties", ignore=ignore)
    return tmp_path


def _edit(old: str, new: str) -> Callable[[Path], None]:
    def apply(context: Path) -> None:
        path = context / "Dockerfile"
        text = path.read_text()
        assert old in text, f"the test's anchor {old!r} is no longer in the Dockerfile"
        path.write_text(text.replace(old, new, 1))

    return apply


def _remove_dir(name: str) -> Callable[[Path], None]:
    def apply(context: Path) -> None:
        shutil.rmtree(context / name)

    return apply


def _append_ignore(line: str) -> Callable[[Path], None]:
    def apply(context: Path) -> None:
        with (context / ".dockerignore").open("a") as f:
            f.write(f"\n{line}\n")

    return apply


def _drop_console_script(context: Path) -> None:
    path = context / "pyproject.toml"
    path.write_text(path.read_text().replace('fraudstream = "consumer.cli:main"', ""))


def test_the_real_dockerfile_passes() -> None:
    assert checker.main(["--context", str(REPO)]) == 0


def test_the_copied_context_passes(context: Path) -> None:
    assert _problems(context) == []


BREAKAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "copy source missing": (_remove_dir("properties"), "COPY source 'properties': not in the"),
    "copy source ignored": (_append_ignore("consumer/"), "'consumer': excluded by .dockerignore"),
    "untagged base image": (
        _edit("ARG PYTHON_IMAGE=python:3.11-slim-bookworm", "ARG PYTHON_IMAGE=python"),
        "base image 'python' has no tag",
    ),
    "latest base image": (
        _edit("ARG PYTHON_IMAGE=python:3.11-slim-bookworm", "ARG PYTHON_IMAGE=python:latest"),
        "uses `latest`",
    ),
    "untagged literal base image": (
        _edit("FROM ${PYTHON_IMAGE} AS runtime", "FROM python AS runtime"),
        "base image 'python' has no tag",
    ),
    "base image argument without a default": (
        _edit("ARG PYTHON_IMAGE=python:3.11-slim-bookworm", "ARG PYTHON_IMAGE"),
        "FROM uses $PYTHON_IMAGE, whose ARG has no default",
    ),
    "base image argument never declared": (
        _edit("FROM ${PYTHON_IMAGE} AS build", "FROM ${BASE_IMAGE} AS build"),
        "FROM uses $BASE_IMAGE, which no ARG before the first FROM declares",
    ),
    "a JDK in the runtime": (
        _edit(
            "apt-get install -y --no-install-recommends libgomp1",
            "apt-get install -y --no-install-recommends libgomp1 openjdk-17-jre-headless",
        ),
        "the runtime stage installs openjdk-17-jre-headless",
    ),
    "maven in the runtime": (
        _edit("USER 10001:10001\n", "RUN apt-get install -y maven\nUSER 10001:10001\n"),
        "the runtime stage installs maven",
    ),
    "no user": (_edit("USER 10001:10001\n", ""), "ENTRYPOINT before any USER"),
    "root user": (_edit("USER 10001:10001", "USER root"), "ENTRYPOINT runs as root"),
    "shell-form entrypoint": (
        _edit('ENTRYPOINT ["fraudstream", "worker"]', "ENTRYPOINT fraudstream worker"),
        "ENTRYPOINT in shell form",
    ),
    "unknown console script": (
        _edit('["fraudstream", "worker"]', '["fraudstreamd", "worker"]'),
        "'fraudstreamd' is neither a [project.scripts] entry",
    ),
    "console script not declared": (_drop_console_script, "'fraudstream' is neither"),
    "unknown subcommand": (
        _edit('["fraudstream", "worker"]', '["fraudstream", "wroker"]'),
        "`fraudstream wroker`: not a subcommand of consumer.cli",
    ),
    "secret-looking env name": (
        _edit("    PYTHONUNBUFFERED=1", "    REDIS_AUTH_TOKEN=abc \\\n    PYTHONUNBUFFERED=1"),
        "ENV REDIS_AUTH_TOKEN: a secret-looking name",
    ),
    "secret-looking arg": (
        _edit("WORKDIR /app\n", "WORKDIR /app\nARG AWS_SECRET_ACCESS_KEY\n"),
        "ARG AWS_SECRET_ACCESS_KEY: a secret-looking name",
    ),
    "password in a url": (
        _edit("    PYTHONUNBUFFERED=1", "    REDIS_URL=rediss://:hunter2@cache:6379 \\\n    X=1"),
        "ENV REDIS_URL: the value carries a password",
    ),
    "copy from a missing stage": (
        _edit("COPY --from=build /opt", "COPY --from=builder /opt"),
        "COPY --from=builder: no earlier stage",
    ),
    "pip install before pyproject": (
        _edit("COPY pyproject.toml README.md ./\n", "COPY README.md ./\n"),
        "`pip install .` before pyproject.toml is copied",
    ),
    "run names a missing script": (
        _edit("WORKDIR /src\n", "WORKDIR /src\nRUN ./scripts/fetch_jars.sh\n"),
        "RUN names './scripts/fetch_jars.sh', which the context does not hold",
    ),
    "lock ignored": (
        _append_ignore("requirements/"),
        "COPY source 'requirements/runtime.lock': excluded by .dockerignore",
    ),
    "lock not copied before the install": (
        _edit(
            "COPY requirements/build.lock requirements/runtime.lock ./requirements/",
            "COPY requirements/build.lock ./requirements/",
        ),
        "pip reads 'requirements/runtime.lock' before a COPY brings it in",
    ),
    "lock missing": (
        _edit("-r requirements/runtime.lock", "-r requirements/prod.lock"),
        "pip reads 'requirements/prod.lock': not in the build context",
    ),
    "lock installed without hashes": (
        _edit(
            "pip install --require-hashes --no-build-isolation -r requirements/runtime.lock",
            "pip install --no-build-isolation -r requirements/runtime.lock",
        ),
        "pip install -r without --require-hashes",
    ),
    "package installed with its dependencies": (
        _edit("pip install --no-deps --no-build-isolation .", 'pip install ".[model]"'),
        "`pip install .` without --no-deps",
    ),
    "wrong stop signal": (
        _edit("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL"),
        "STOPSIGNAL SIGKILL: the daemon shuts down on SIGTERM",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_a_broken_copy_fails_with_a_clear_message(context: Path, name: str) -> None:
    breakage, expected = BREAKAGES[name]
    breakage(context)
    problems = _problems(context)
    assert any(expected in p for p in problems), problems
    # Each message points at a line of the Dockerfile.
    assert all(p.split(":")[1].isdigit() for p in problems), problems


def test_the_command_line_exits_nonzero_and_names_the_line(
    context: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit("USER 10001:10001", "USER 0")(context)
    assert checker.main(["--context", str(context)]) == 1
    err = capsys.readouterr().err
    line = next(
        n
        for n, t in enumerate((context / "Dockerfile").read_text().splitlines(), 1)
        if "USER 0" in t
    )
    assert f":{line}: the final USER is root" in err


def test_the_task_definition_health_check_is_the_images() -> None:
    """ECS does not read an image's HEALTHCHECK: the task definition repeats its command."""
    import json
    import re

    from cfnlint.decode import cfn_yaml

    dockerfile = (REPO / "Dockerfile").read_text()
    found = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$", dockerfile, re.M)
    assert found, "the Dockerfile has an exec-form HEALTHCHECK"
    template = cfn_yaml.load(str(REPO / "deploy" / "ecs" / "fraudstream.yaml"))
    container = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert container["HealthCheck"]["Command"] == ["CMD", *json.loads(found.group(1))]
    # Compiles, and names the daemon's main class as the worker execs it.
    code = json.loads(found.group(1))[2]
    compile(code, "HEALTHCHECK", "exec")
    assert "software.amazon.kinesis.multilang.MultiLangDaemon" in code
    daemon = (REPO / "consumer" / "worker" / "daemon.py").read_text()
    assert 'DAEMON_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"' in daemon


def test_the_base_image_is_a_build_argument_defaulting_to_the_official_one() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm\n" in dockerfile
    froms = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert froms and all(line.startswith("FROM ${PYTHON_IMAGE} AS ") for line in froms)
