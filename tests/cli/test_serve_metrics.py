"""``roomwire serve --metrics URL``: ``/metrics`` and ``/healthz`` scraped with a real HTTP
client (urllib), on asyncio and on trio; bad URLs and taken ports are errors with their exit
codes. (``ROOMWIRE_METRICS`` and the config file's ``metrics`` key: test_serve_config.py.)"""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from .conftest import (
    EXIT_CONNECT,
    EXIT_OK,
    EXIT_USAGE,
    TRIO_CLI,
    Spawner,
    assert_exit,
    assert_one_line_error,
    free_port,
    run_cli,
    via,
)


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def _value(exposition: str, name: str) -> float:
    line = next(line for line in exposition.splitlines() if line.startswith(f"{name} "))
    return float(line.split()[1])


@pytest.mark.parametrize("command", [None, TRIO_CLI], ids=["asyncio", "trio"])
def test_serve_metrics_flag_serves_metrics_and_health(
    spawn: Spawner, command: list[str] | None
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    server = spawn.server("--metrics", url, command=command)
    assert f"metrics on {url}/metrics and /healthz" in server.stdout
    result = run_cli("messaging", "broadcast", *via(server), "--room", "m", "--type", "t",
                     "--data", "{}")  # fmt: skip
    assert_exit(result, EXIT_OK)
    status, body = _get(f"{url}/metrics")
    assert status == 200
    assert _value(body, "roomwire_messages_routed_total") == 1
    assert _value(body, "roomwire_connections_accepted_total") == 1
    assert _get(f"{url}/healthz") == (200, json.dumps({"status": "ok", "backplane": None}) + "\n")


def test_a_metrics_url_that_is_not_http_is_a_usage_error() -> None:
    result = run_cli("serve", "--port", "0", "--secret", "s" * 32, "--metrics", "tcp://x:1")
    assert_one_line_error(result, EXIT_USAGE, "http://host:port")


def test_a_taken_metrics_port_cannot_listen() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        url = f"http://127.0.0.1:{taken.getsockname()[1]}"
        result = run_cli("serve", "--port", "0", "--secret", "s" * 32, "--metrics", url)
    assert_one_line_error(result, EXIT_CONNECT, f"cannot listen on {url}")
