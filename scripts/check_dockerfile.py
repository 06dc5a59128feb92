#!/usr/bin/env python3
"""Checks the Dockerfile's text, in seconds and without a container engine.

CI also builds the image and runs it (scripts/container_test.sh), minutes later; some mistakes
are visible in the text and deserve a message naming the line: a COPY source that .dockerignore
drops, an entry point that no package installs, a base image that moves under us (a FROM's
build argument is checked at its default), a root user, a shell that swallows SIGTERM, a secret
baked into a layer, dependencies resolved afresh instead of from the hash-pinned lock, a JDK,
Maven or a compiler in the stage that runs.

    .venv/bin/python scripts/check_dockerfile.py [--dockerfile Dockerfile] [--context .]

Exit status 0 when every check passes, 1 with one `Dockerfile:LINE: message` per problem.
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from docker.utils.build import PatternMatcher
from dockerfile_parse import DockerfileParser

REPO_ROOT = Path(__file__).resolve().parent.parent
# Commands a base image or an apt package provides; anything else an ENTRYPOINT or CMD names
# must come from this repository (a console script, or a file copied into the image).
SYSTEM_COMMANDS = frozenset({"python", "python3", "java", "sh", "bash", "tini", "pip"})
ROOT_USERS = frozenset({"root", "0"})
SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH",
    re.IGNORECASE,
)
# `scheme://user:password@host`: a credential written into a value, whatever the variable's name.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)
# Tokens of a RUN command that name a file of this repository (./x, scripts/x.sh, tools/x.py).
REPO_FILE_TOKEN = re.compile(r"^(\./)?[\w.-]+(/[\w.-]+)*\.(sh|py)$")
# A pip command: pip, pip3, pip3.11, /opt/venv/bin/pip (`python -m pip` is found separately).
PIP_PROGRAM = re.compile(r"^(.*/)?pip(\d+(\.\d+)?)?$")
# Packages that are for building, never for the image that runs.
BUILD_PACKAGE = re.compile(
    r"^(openjdk-\d+-(jdk|jre)(-headless)?|default-(jdk|jre)(-headless)?|maven|gradle|ant|gcc(-\d+)?"
    r"|g\+\+(-\d+)?|build-essential|make|cmake|python3-dev|python3-pip)(=\S*)?$"
)
SHELL_SEPARATORS = frozenset({"&&", "||", ";", "|"})
# pip options whose value is a file: requirements and constraints.
PIP_FILE_OPTIONS = ("--requirement", "--constraint", "-r", "-c")


@dataclass
class Instruction:
    """One Dockerfile instruction, continuation lines joined; `line` counts from 1."""

    name: str
    value: str
    line: int


@dataclass
class Stage:
    """One FROM ... block."""

    image: str
    alias: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Problem:
    line: int
    message: str

    def render(self, dockerfile: str) -> str:
        return f"{dockerfile}:{self.line}: {self.message}"


def path_pattern(pattern: str) -> re.Pattern[str]:
    """A COPY source glob as Docker matches it: `*` and `?` stop at `/`."""
    out = []
    for part in re.split(r"(\*|\?|\[[^\]]*\])", pattern):
        if part == "*":
            out.append("[^/]*")
        elif part == "?":
            out.append("[^/]")
        elif part.startswith("[") and part.endswith("]") and len(part) > 2:
            out.append(part)
        else:
            out.append(re.escape(part))
    return re.compile("".join(out) + r"\Z")


@dataclass
class GlobalArg:
    """An ARG before the first FROM: the only variables a FROM line may use."""

    name: str
    default: str | None
    line: int


def read_global_args(dockerfile: Path) -> list[GlobalArg]:
    parser = DockerfileParser(path=str(dockerfile))
    found: list[GlobalArg] = []
    for item in parser.structure:
        name = str(item["instruction"]).upper()
        if name == "FROM":
            break
        if name == "ARG":
            key, sep, value = str(item["value"]).strip().partition("=")
            default = value.strip().strip("\"'") if sep else None
            found.append(GlobalArg(key.strip(), default, int(item["startline"]) + 1))
    return found


def read_stages(dockerfile: Path) -> list[Stage]:
    parser = DockerfileParser(path=str(dockerfile))
    stages: list[Stage] = []
    for item in parser.structure:
        name = str(item["instruction"]).upper()
        value = str(item["value"])
        line = int(item["startline"]) + 1
        if name in ("COMMENT", "ARG") and not stages:
            continue
        if name == "COMMENT":
            continue
        if name == "FROM":
            words = value.split()
            words = [w for w in words if not w.startswith("--platform")]
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0] if words else "", alias, line))
        elif stages:
            stages[-1].instructions.append(Instruction(name, value, line))
    return stages


def read_dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    patterns: list[str] = []
    if path.exists():
        for raw in path.read_text().splitlines():
            text = raw.strip()
            if text and not text.startswith("#"):
                patterns.append(text)
    return patterns


def context_files(context: Path, patterns: list[str]) -> set[str]:
    """Every file the build context sends to the builder, relative to the context, with `/`."""
    ignore = PatternMatcher(patterns)
    negated = [p[1:].strip("/") for p in patterns if p.startswith("!")]

    def skipped(rel: str) -> bool:
        # An excluded directory no `!pattern` can reach into is not walked (.venv, node_modules).
        if not ignore.matches(rel):
            return False
        return not any(n.startswith(rel + "/") or glob.has_magic(n.split("/")[0]) for n in negated)

    files: set[str] = set()
    for directory, dirnames, filenames in os.walk(context):
        rel_dir = os.path.relpath(directory, context)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirnames[:] = [d for d in dirnames if d != ".git" and not skipped(prefix + d)]
        for name in filenames:
            rel = prefix + name
            if not ignore.matches(rel):
                files.add(rel)
    return files


def split_flags(words: list[str]) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    rest: list[str] = []
    for word in words:
        if word.startswith("--") and not rest:
            key, _, value = word[2:].partition("=")
            flags[key] = value
        else:
            rest.append(word)
    return flags, rest


def exec_form(value: str) -> list[str] | None:
    """The JSON array of an exec-form ENTRYPOINT/CMD, or None for shell form."""
    text = value.strip()
    if not text.startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return parsed
    return None


def pip_installs(words: list[str]) -> Iterator[list[str]]:
    """The arguments after `install` of each `pip install` in a RUN command's words."""
    command: list[str] = []
    for word in [*words, ";"]:
        if word not in SHELL_SEPARATORS:
            command.append(word)
            continue
        args = command
        command = []
        if len(args) >= 3 and args[1:3] == ["-m", "pip"]:
            args = args[2:]
        if args and PIP_PROGRAM.match(args[0]) and "install" in args[1:]:
            yield args[args.index("install", 1) + 1 :]


def pip_files(args: list[str]) -> list[str]:
    """Requirement and constraint files among pip's arguments: `-r f`, `-rf`, `--requirement=f`."""
    files: list[str] = []
    for index, word in enumerate(args):
        for option in PIP_FILE_OPTIONS:
            if word == option and index + 1 < len(args):
                files.append(args[index + 1])
            elif option.startswith("--") and word.startswith(option + "="):
                files.append(word[len(option) + 1 :])
            elif not option.startswith("--") and word.startswith(option) and len(word) > 2:
                files.append(word[2:])
    return files


def copy_words(value: str) -> list[str]:
    form = exec_form(value)
    if form is not None:
        return form
    return shlex.split(value)


def key_values(value: str) -> Iterator[tuple[str, str]]:
    """The pairs of `ENV a=1 b=2`, `ENV a 1` or `ARG a=1` / `ARG a`."""
    words = shlex.split(value)
    if not words:
        return
    if "=" not in words[0]:
        if len(words) > 1 and words[1:]:
            yield words[0], " ".join(words[1:])
        else:
            yield words[0], ""
        return
    for word in words:
        key, _, val = word.partition("=")
        yield key, val


@dataclass
class Project:
    """What pyproject.toml says a `pip install .` installs."""

    scripts: dict[str, str]

    @classmethod
    def load(cls, context: Path) -> Project:
        path = context / "pyproject.toml"
        if not path.exists():
            return cls({})
        data = tomllib.loads(path.read_text())
        return cls(dict(data.get("project", {}).get("scripts", {})))


def module_file(context: Path, module: str) -> Path | None:
    base = context.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def subcommands(source: Path) -> set[str]:
    """The names an argparse CLI registers with `add_parser("name", ...)`."""
    tree = ast.parse(source.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_parser"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


class Checker:
    def __init__(self, dockerfile: Path, context: Path) -> None:
        self.dockerfile = dockerfile
        self.context = context
        self.stages = read_stages(dockerfile)
        self.global_args = read_global_args(dockerfile)
        self.files = context_files(context, read_dockerignore(context))
        self.project = Project.load(context)
        self.problems: list[Problem] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(line, message))

    def run(self) -> list[Problem]:
        if not self.stages:
            self.problem(1, "no FROM instruction")
            return self.problems
        self.check_base_images()
        for index, stage in enumerate(self.stages):
            self.check_copies(index, stage)
            self.check_run_files(stage)
            self.check_pip_installs(stage)
            self.check_no_secrets(stage)
        self.check_final_stage(self.stages[-1])
        return sorted(self.problems, key=lambda p: p.line)

    # -- base images -------------------------------------------------------------------------

    def resolve_image(self, stage: Stage) -> str | None:
        """A FROM's image with its build arguments replaced by their defaults (the image a plain
        `docker build` uses); None, after saying why, when an argument has no default."""
        defaults = {arg.name: arg.default for arg in self.global_args}
        image = stage.image
        for match in re.finditer(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", stage.image):
            name = match.group(1)
            default = defaults.get(name)
            if name not in defaults:
                self.problem(
                    stage.line, f"FROM uses ${name}, which no ARG before the first FROM declares"
                )
                return None
            if not default:
                self.problem(
                    stage.line,
                    f"FROM uses ${name}, whose ARG has no default: a plain build has no base",
                )
                return None
            image = image.replace(match.group(0), default)
        return image

    def check_base_images(self) -> None:
        aliases: set[str] = set()
        for stage in self.stages:
            resolved = self.resolve_image(stage) if "$" in stage.image else stage.image
            if resolved is None:
                continue
            image = resolved
            if not (image in aliases or image == "scratch" or "@sha256:" in image):
                name = image.rsplit("/", 1)[-1]
                tag = name.partition(":")[2]
                if not tag:
                    self.problem(stage.line, f"base image {image!r} has no tag: pin one")
                elif tag == "latest":
                    self.problem(stage.line, f"base image {image!r} uses `latest`: pin a version")
                elif "$" in tag:
                    self.problem(stage.line, f"base image {image!r}: the tag must be literal")
            if stage.alias:
                aliases.add(stage.alias)

    # -- COPY / ADD sources --------------------------------------------------------------------

    def source_present(self, source: str) -> bool:
        pattern = source.strip("/").removeprefix("./") or "."
        if pattern == ".":
            return bool(self.files)
        if glob.has_magic(pattern):
            regex = path_pattern(pattern)
            return any(regex.match(f) or regex.match(f.rsplit("/", 1)[0]) for f in self.files)
        return pattern in self.files or any(f.startswith(pattern + "/") for f in self.files)

    def check_copies(self, index: int, stage: Stage) -> None:
        earlier = {s.alias for s in self.stages[:index] if s.alias} | {str(i) for i in range(index)}
        for ins in stage.instructions:
            if ins.name not in ("COPY", "ADD"):
                continue
            flags, words = split_flags(copy_words(ins.value))
            if len(words) < 2:
                self.problem(ins.line, f"{ins.name} needs a source and a destination")
                continue
            sources = words[:-1]
            if "from" in flags:
                origin = flags["from"]
                if origin not in earlier and ":" not in origin and "@" not in origin:
                    self.problem(ins.line, f"{ins.name} --from={origin}: no earlier stage")
                continue
            for source in sources:
                if re.match(r"^[a-z]+://", source) or source.startswith("git@"):
                    self.problem(ins.line, f"{ins.name} {source}: remote sources are not allowed")
                elif ".." in Path(source).parts:
                    self.problem(ins.line, f"{ins.name} {source}: outside the build context")
                elif not self.source_present(source):
                    reason = (
                        "excluded by .dockerignore"
                        if (self.context / source).exists()
                        else "not in the repository"
                    )
                    self.problem(ins.line, f"{ins.name} source {source!r}: {reason}")

    # -- files that RUN commands name ----------------------------------------------------------

    def check_run_files(self, stage: Stage) -> None:
        copied = self.copied_sources(stage)
        for ins in stage.instructions:
            if ins.name != "RUN":
                continue
            try:
                words = shlex.split(ins.value)
            except ValueError:
                self.problem(ins.line, "RUN: unbalanced quotes")
                continue
            for word in words:
                if not REPO_FILE_TOKEN.match(word) or word.startswith("/"):
                    continue
                if not self.source_present(word):
                    self.problem(ins.line, f"RUN names {word!r}, which the context does not hold")
                elif not any(word.removeprefix("./").startswith(c) for c in copied):
                    self.problem(ins.line, f"RUN names {word!r}, which no earlier COPY brings in")
            # `pip install .`, also quoted and with extras: ".[model]"
            installs_here = (
                r"\bpip\d*(\.\d+)?\s+install\b[^&;|]*\s[\"']?\.(\[[^\]]*\])?[\"']?(\s|$)"
            )
            if re.search(installs_here, ins.value) and ("pyproject.toml" not in copied):
                self.problem(ins.line, "`pip install .` before pyproject.toml is copied")

    # -- dependencies from the lock ------------------------------------------------------------

    def check_pip_installs(self, stage: Stage) -> None:
        """Requirements come from copied, hash-pinned files; the package adds no dependencies."""
        copied: list[str] = []
        for ins in stage.instructions:
            if ins.name in ("COPY", "ADD"):
                flags, words = split_flags(copy_words(ins.value))
                if "from" not in flags:
                    copied += [w.strip("/").removeprefix("./") for w in words[:-1]]
                continue
            if ins.name != "RUN":
                continue
            try:
                words = shlex.split(ins.value)
            except ValueError:
                continue  # check_run_files says so
            for args in pip_installs(words):
                files = pip_files(args)
                for name in files:
                    rel = name.removeprefix("./")
                    if name.startswith("/") or "$" in name:
                        continue
                    if not self.source_present(rel):
                        self.problem(ins.line, f"pip reads {name!r}: not in the build context")
                    elif not any(rel == c or rel.startswith(c + "/") for c in copied):
                        self.problem(ins.line, f"pip reads {name!r} before a COPY brings it in")
                if files and "--require-hashes" not in args:
                    self.problem(
                        ins.line,
                        "pip install -r without --require-hashes: install the lock hash-checked",
                    )
                local = [a for a in args if re.fullmatch(r"[\"']?\.(\[[^\]]*\])?[\"']?", a)]
                if local and "--no-deps" not in args:
                    self.problem(
                        ins.line,
                        "`pip install .` without --no-deps: its dependencies would be resolved "
                        "afresh instead of coming from the lock",
                    )

    def copied_sources(self, stage: Stage) -> list[str]:
        copied: list[str] = []
        for ins in stage.instructions:
            if ins.name in ("COPY", "ADD"):
                flags, words = split_flags(copy_words(ins.value))
                if "from" not in flags:
                    copied += [w.strip("/").removeprefix("./") for w in words[:-1]]
        return copied

    # -- secrets ---------------------------------------------------------------------------------

    def check_no_secrets(self, stage: Stage) -> None:
        for ins in stage.instructions:
            if ins.name not in ("ENV", "ARG"):
                continue
            for key, value in key_values(ins.value):
                if SECRET_NAME.search(key):
                    self.problem(
                        ins.line,
                        f"{ins.name} {key}: a secret-looking name; secrets come from the "
                        "runtime (ECS secrets, task role), never the image",
                    )
                elif URL_WITH_PASSWORD.search(value):
                    self.problem(ins.line, f"{ins.name} {key}: the value carries a password")

    # -- the image that runs -----------------------------------------------------------------

    def check_no_build_tools(self, stage: Stage) -> None:
        """The image that runs carries no compilers, JDK or Maven: they are the build stage's."""
        for ins in stage.instructions:
            if ins.name != "RUN" or not re.search(r"\bapt(-get)?\b[^&;|]*\binstall\b", ins.value):
                continue
            for command in re.split(r"&&|\|\||;|\|", ins.value):
                if not re.search(r"\bapt(-get)?\s.*\binstall\b", command):
                    continue
                for package in command.split():
                    if BUILD_PACKAGE.match(package):
                        self.problem(
                            ins.line,
                            f"the runtime stage installs {package}: build tools belong in the "
                            "build stage (the runtime's Java is the jlink-made one)",
                        )

    def check_final_stage(self, stage: Stage) -> None:
        self.check_no_build_tools(stage)
        user: Instruction | None = None
        entrypoint: Instruction | None = None
        for ins in stage.instructions:
            if ins.name == "USER":
                user = ins
            elif ins.name == "ENTRYPOINT":
                entrypoint = ins
                if user is None:
                    self.problem(ins.line, "ENTRYPOINT before any USER: the process runs as root")
                elif user.value.split(":")[0].strip() in ROOT_USERS:
                    self.problem(ins.line, f"ENTRYPOINT runs as root (USER at line {user.line})")
            elif ins.name == "CMD" and exec_form(ins.value) is None:
                self.problem(ins.line, "CMD in shell form: use the exec form ([...])")
            elif ins.name == "STOPSIGNAL" and ins.value.strip() not in ("SIGTERM", "15"):
                self.problem(ins.line, f"STOPSIGNAL {ins.value}: the daemon shuts down on SIGTERM")
        if user is not None and user.value.split(":")[0].strip() in ROOT_USERS:
            self.problem(user.line, "the final USER is root")
        if entrypoint is None:
            self.problem(stage.line, "the final stage has no ENTRYPOINT")
            return
        argv = exec_form(entrypoint.value)
        if argv is None:
            self.problem(
                entrypoint.line,
                "ENTRYPOINT in shell form: /bin/sh would be PID 1 and keep SIGTERM from the app",
            )
            return
        if not argv:
            self.problem(entrypoint.line, "ENTRYPOINT is empty")
            return
        self.check_command(entrypoint.line, argv)

    def check_command(self, line: int, argv: list[str]) -> None:
        command = argv[0]
        if "/" in command:
            if not self.image_path_copied(command):
                self.problem(line, f"ENTRYPOINT {command}: no COPY puts that file in the image")
            return
        if command in SYSTEM_COMMANDS:
            return
        target = self.project.scripts.get(command)
        if target is None:
            self.problem(
                line,
                f"ENTRYPOINT {command!r} is neither a [project.scripts] entry of pyproject.toml"
                " nor a system command",
            )
            return
        module, _, function = target.partition(":")
        source = module_file(self.context, module)
        if source is None:
            self.problem(line, f"console script {command} -> {target}: module not found")
            return
        if function and not re.search(rf"^def {re.escape(function)}\(", source.read_text(), re.M):
            self.problem(line, f"console script {command} -> {target}: no function {function}")
            return
        if len(argv) > 1 and not argv[1].startswith("-"):
            # A package's commands may each register themselves from a module of their own.
            sources = (
                sorted(source.parent.glob("*.py")) if source.name == "__init__.py" else [source]
            )
            registered: set[str] = set().union(*(subcommands(path) for path in sources))
            if registered and argv[1] not in registered:
                self.problem(
                    line,
                    f"`{command} {argv[1]}`: not a subcommand of {module} "
                    f"(it has {', '.join(sorted(registered))})",
                )

    def image_path_copied(self, path: str) -> bool:
        for stage in self.stages:
            for ins in stage.instructions:
                if ins.name in ("COPY", "ADD"):
                    _, words = split_flags(copy_words(ins.value))
                    if words and path.startswith(words[-1].rstrip("/")):
                        return True
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dockerfile", type=Path, default=None)
    parser.add_argument("--context", type=Path, default=REPO_ROOT)
    args = parser.parse_args(argv)
    dockerfile = args.dockerfile or args.context / "Dockerfile"
    if not dockerfile.exists():
        print(f"{dockerfile}: not found", file=sys.stderr)
        return 1
    problems = Checker(dockerfile, args.context).run()
    for problem in problems:
        print(problem.render(str(dockerfile)), file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {dockerfile}", file=sys.stderr)
        return 1
    print(f"{dockerfile}: ok", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
