"""One exception root: every public exception class the package defines derives from
FraudstreamError (consumer/errors.py), and keeps a built-in base a caller may already catch."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import consumer
from consumer.errors import FraudstreamError


def _public_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(consumer.__path__, "consumer."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found.append(value)
    return found


def test_every_public_exception_derives_from_the_root() -> None:
    exceptions = _public_exceptions()
    assert len(exceptions) >= 15  # the walk found the package's classes
    strays = [
        f"{e.__module__}.{e.__qualname__}"
        for e in exceptions
        if not issubclass(e, FraudstreamError)
    ]
    assert strays == []


def test_the_root_is_not_a_catch_all() -> None:
    """Only what the package raises on purpose: a bug (a KeyError, a ZeroDivisionError) is not a
    FraudstreamError, so it is never mistaken for a refusal."""
    assert not issubclass(KeyError, FraudstreamError)
    assert not issubclass(FraudstreamError, (ValueError, RuntimeError, OSError, ArithmeticError))
