"""``roomwire serve --config roomwire.toml`` and ``--print-config``: every serve flag has a
key and a ROOMWIRE_* variable; flags win over variables, variables over the file."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import roomwire_asyncio

from roomwire import ParticipantToken

from .conftest import (
    EXIT_OK,
    EXIT_USAGE,
    SECRET,
    Spawner,
    assert_exit,
    assert_one_line_error,
    cli_env,
    free_port,
    run_cli,
)

SAMPLES: dict[str, tuple[Any, str]] = {
    "host": ("127.0.0.2", "--host"),
    "port": (7123, "--port"),
    "secret": ("file-secret-0123456789abcdef-0123456789", "--secret"),
    "heartbeat": (3.5, "--heartbeat"),
    "redis": ("redis://127.0.0.1:6390/1", "--redis"),
    "node_id": ("node-a", "--node-id"),
    "backplane_ttl": (9.0, "--backplane-ttl"),
    "probe_interval": (0.5, "--probe-interval"),
    "rate_limit": (50.0, "--rate-limit"),
    "rate_burst": (20, "--rate-burst"),
    "metrics": ("http://127.0.0.1:9464", "--metrics"),
    "listen": (["ws://127.0.0.1:7891/", "tcp://127.0.0.1:7890"], "--listen"),
    "tls_cert": ("cert.pem", "--tls-cert"),
    "tls_key": ("key.pem", "--tls-key"),
    "allowed_origin": (["https://a.example", "https://b.example"], "--allowed-origin"),
    "backplane_key": ("file-key-0123456789abcdef-0123456789", "--backplane-key"),
    "history": ("sqlite:///history.db", "--history"),
    "idempotency_window": (30, "--idempotency-window"),
    "max_idempotency_keys": (200, "--max-idempotency-keys"),
    "max_connections": (900, "--max-connections"),
    "max_connections_per_address": (50, "--max-connections-per-address"),
    "resume_window": (12.5, "--resume-window"),
}
"""A valid value and the flag for every serve setting (a list: a repeatable flag)."""
REDACTED = {"secret", "backplane_key"}
"""Settings --print-config never shows."""


def _variant(value: Any, prefix: str, step: int) -> Any:
    """Another valid value of the same kind."""
    if isinstance(value, str):
        return prefix + value
    if isinstance(value, list):
        return [prefix + item for item in value]
    return value + step


def _as_variable(value: Any) -> str:
    """A repeatable option's variable holds its values separated by spaces."""
    return " ".join(value) if isinstance(value, list) else str(value)


def _as_flags(flag: str, value: Any) -> list[str]:
    return (
        [a for item in value for a in (flag, item)]
        if isinstance(value, list)
        else [flag, str(value)]
    )


def _settings(result: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """``--print-config`` output: the TOML values, and where each came from (its comment)."""
    assert_exit(result, EXIT_OK)
    values = tomllib.loads(result.stdout)
    sources = {}
    for line in result.stdout.splitlines():
        if line.startswith("#") and " is not set (" in line:
            name, rest = line[2:].split(" is not set (")
            sources[name] = rest.rstrip(")")
        elif not line.startswith("#"):
            name, rest = line.split(" = ", 1)
            sources[name] = rest.rsplit("  # ", 1)[1]
    return values, sources


def _write(path: Path, settings: dict[str, Any]) -> Path:
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    return path


def test_every_serve_setting_has_a_config_key_and_a_variable(tmp_path: Path) -> None:
    values, sources = _settings(run_cli("serve", "--print-config"))
    assert sources.keys() == SAMPLES.keys()  # a new serve flag needs a sample here
    assert set(sources.values()) == {"default"}
    config = _write(tmp_path / "roomwire.toml", {k: v for k, (v, _) in SAMPLES.items()})
    values, sources = _settings(run_cli("serve", "--config", str(config), "--print-config"))
    for name, (value, _) in SAMPLES.items():
        assert sources[name] == f"--config {config}"
        assert values[name] == ("<redacted>" if name in REDACTED else value)
    for name, (value, _) in SAMPLES.items():
        variable = f"ROOMWIRE_{name.upper()}"
        env = cli_env(**{variable: _as_variable(value)})
        values, sources = _settings(run_cli("serve", "--print-config", env=env))
        assert sources[name] == variable


@pytest.mark.parametrize("name", list(SAMPLES))
def test_flag_beats_variable_beats_file(tmp_path: Path, name: str) -> None:
    file_value, flag = SAMPLES[name]
    config = _write(tmp_path / "roomwire.toml", {name: file_value})
    variable = f"ROOMWIRE_{name.upper()}"
    env_value = _variant(file_value, "env-", 1)
    flag_value = _variant(file_value, "flag-", 2)
    env = cli_env(**{variable: _as_variable(env_value)})
    args = ("serve", "--config", str(config), "--print-config")
    shown = "<redacted>"
    values, sources = _settings(run_cli(*args, *_as_flags(flag, flag_value), env=env))
    assert sources[name] == f"flag {flag}"
    assert values[name] == (shown if name in REDACTED else flag_value)
    values, sources = _settings(run_cli(*args, env=env))
    assert sources[name] == variable
    assert values[name] == (shown if name in REDACTED else env_value)
    values, sources = _settings(run_cli(*args))
    assert sources[name] == f"--config {config}"
    assert values[name] == (shown if name in REDACTED else file_value)


def test_print_config_never_shows_the_secret(tmp_path: Path) -> None:
    config = _write(tmp_path / "roomwire.toml", {"secret": SECRET})
    for args in (["--config", str(config)], ["--secret", SECRET]):
        result = run_cli("serve", *args, "--print-config")
        assert_exit(result, EXIT_OK)
        assert SECRET not in result.stdout + result.stderr
        assert 'secret = "<redacted>"' in result.stdout


def test_serve_runs_with_the_file_settings(tmp_path: Path, spawn: Spawner) -> None:
    port = free_port()
    settings = {"host": "127.0.0.1", "port": port, "secret": SECRET, "idempotency_window": 30}
    config = _write(tmp_path / "roomwire.toml", {**settings, "max_idempotency_keys": 200})
    server = spawn.process(["serve", "--config", str(config)], cli_env())
    url = f"tcp://127.0.0.1:{port}"
    server.wait_output(f"listening on {url}")
    assert "development secret" not in server.stderr  # the file's secret is used
    result = run_cli("messaging", "list", "--url", url, "--secret", SECRET, "--room", "r", "--json")
    assert_exit(result, EXIT_OK)

    async def advertised() -> Any:  # the server's welcome says what the file set
        token = ParticipantToken(room="r", name="probe").to_jwt(SECRET)
        async with roomwire_asyncio.connect(url, token=token, reconnect=False) as client:
            return client.limits

    limits = asyncio.run(advertised())
    assert (limits.idempotency_window, limits.max_idempotency_keys) == (30, 200)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("bogus = 1\n", "unknown key(s) bogus"),
        ("port = \n", "not valid TOML"),
        ("port = [1, 2]\n", "port must be a string or a number"),
        ("[serve]\nport = 1\n", "unknown key(s) serve"),
    ],
    ids=["unknown-key", "not-toml", "list-value", "table"],
)
def test_a_bad_file_is_a_one_line_usage_error(tmp_path: Path, content: str, fragment: str) -> None:
    config = tmp_path / "roomwire.toml"
    config.write_text(content)
    result = run_cli("serve", "--config", str(config))
    assert_one_line_error(result, EXIT_USAGE, fragment, str(config))


def test_a_missing_file_is_a_one_line_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = run_cli("serve", "--config", str(missing), "--print-config")
    assert_one_line_error(result, EXIT_USAGE, "cannot read --config", str(missing))


def test_a_wrongly_typed_value_is_refused(tmp_path: Path) -> None:
    config = _write(tmp_path / "roomwire.toml", {"port": "seven"})
    result = run_cli("serve", "--config", str(config), "--print-config")
    assert_exit(result, EXIT_USAGE)
    assert "port" in result.stderr
    assert result.stdout == ""
