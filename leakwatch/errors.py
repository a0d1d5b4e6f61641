"""The few exception types leakwatch raises into its caller's code."""

from __future__ import annotations


class LeakwatchError(Exception):
    """Base class of every error leakwatch raises on purpose."""


class ConfigError(LeakwatchError, ValueError):
    """An option was given a value leakwatch cannot use.

    The message names the option, the value given and what is allowed.
    """

    def __init__(self, option: str, value: object, allowed: str) -> None:
        self.option = option
        self.value = value
        self.allowed = allowed
        super().__init__(f"leakwatch option {option!r}: got {value!r}; allowed: {allowed}")


class MissingDependency(LeakwatchError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"leakwatch needs {package!r} for this; install it with pip install 'leakwatch-agent[{extra}]'")


class MissingTool(LeakwatchError, FileNotFoundError):
    """A program leakwatch runs is not installed; the message names the Debian package."""

    def __init__(self, program: str, debian_package: str, purpose: str) -> None:
        self.program = program
        self.debian_package = debian_package
        super().__init__(
            f"leakwatch needs the {program!r} program {purpose}; install it (Debian: apt-get install {debian_package})"
        )
