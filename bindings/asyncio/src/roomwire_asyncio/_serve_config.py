"""``roomwire serve --config FILE``: read the TOML file, and describe the resulting settings.

The file's keys are the serve options' names (``rate_burst`` for ``--rate-burst``). Its values
become the command's defaults, so a flag, then a ``ROOMWIRE_*`` variable, still win over it.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import typer
from roomwire_anyio import redact_url

NOT_SETTINGS = frozenset({"config", "print_config", "allow_weak_secret"})
"""Options of ``serve`` that are not server settings (and so no keys of the file): a
deployment's file cannot weaken the secret check, only a flag (or its variable) can."""
SECRETS = frozenset({"secret", "backplane_key"})
"""Settings never printed."""


class ConfigError(ValueError):
    """The file cannot be read, is not TOML, or holds a key or value serve does not take."""


def setting_names(ctx: typer.Context) -> list[str]:
    """The keys a config file may hold: one per option of the command ``ctx`` runs."""
    return [p.name for p in ctx.command.params if p.name and p.name not in NOT_SETTINGS]


def read(path: Path, allowed: list[str]) -> dict[str, Any]:
    """The settings in ``path``, checked against the ``allowed`` keys."""
    try:
        with path.open("rb") as file:
            settings = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read --config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path} is not valid TOML: {exc}") from None
    unknown = sorted(settings.keys() - set(allowed))
    if unknown:
        raise ConfigError(
            f"--config {path}: unknown key(s) {', '.join(unknown)}; "
            f"serve takes {', '.join(allowed)}"
        )
    for key, value in settings.items():
        if not _is_setting(value):  # bool is an int: click checks it later
            raise ConfigError(
                f"--config {path}: {key} must be a string or a number"
                " (a list of strings for a repeatable option)"
            )
    return settings


def _is_setting(value: object) -> bool:
    """A scalar, or a list of strings for a repeatable option (``listen = ["ws://..."]``)."""
    if isinstance(value, list):
        return all(isinstance(item, str) for item in value)
    return isinstance(value, str | int | float)


def describe(ctx: typer.Context) -> str:
    """The settings ``ctx`` resolved, as TOML with where each came from; the secret redacted."""
    lines = ["# roomwire serve: flags, then ROOMWIRE_* variables, then --config, then defaults"]
    options = {p.name: p for p in ctx.command.params}
    for name in setting_names(ctx):
        value = ctx.params[name]
        where = _source(ctx, name, options[name].opts[0], options[name].envvar)
        if value is None:
            lines.append(f"# {name} is not set ({where})")
        elif name in SECRETS:
            lines.append(f'{name} = "<redacted>"  # {where}')
        elif name == "redis" or (name == "history" and value.startswith("redis")):
            lines.append(f"{name} = {json.dumps(redact_url(value))}  # {where}")
        else:
            lines.append(f"{name} = {json.dumps(value, default=str)}  # {where}")  # Paths too
    return "\n".join(lines) + "\n"


def _source(ctx: typer.Context, name: str, flag: str, envvar: object) -> str:
    source = ctx.get_parameter_source(name)
    kind = "DEFAULT" if source is None else source.name
    if kind == "COMMANDLINE":
        return f"flag {flag}"
    if kind == "ENVIRONMENT":
        return str(envvar)
    if kind == "DEFAULT_MAP":
        return f"--config {ctx.params['config']}"
    return "default"
