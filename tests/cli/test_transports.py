"""``roomwire serve --listen`` with TLS and WebSocket listeners, and clients on ``--url
wss://... --ca FILE``: real subprocesses, both runtimes for the client."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from roomwire import ParticipantToken

from .conftest import (
    CLI,
    EXIT_CONNECT,
    EXIT_OK,
    EXIT_USAGE,
    SECRET,
    TRIO_CLI,
    Spawner,
    assert_exit,
    assert_one_line_error,
    cli_env,
    free_port,
    run_cli,
)


def write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(cert chain, key, CA) PEM files for 127.0.0.1 from a fresh trustme CA."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, root = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    ca.cert_pem.write_to_path(str(root))
    return cert, key, root


@pytest.mark.parametrize("command", [CLI, TRIO_CLI], ids=["asyncio", "trio"])
def test_a_client_reaches_wss_and_ws_listeners(
    tmp_path: Path, spawn: Spawner, command: list[str]
) -> None:
    cert, key, root = write_certificates(tmp_path)
    ports = [free_port() for _ in range(3)]
    urls = [
        f"tcp://127.0.0.1:{ports[0]}",
        f"wss://127.0.0.1:{ports[1]}/",
        f"ws://127.0.0.1:{ports[2]}/",
    ]
    args = ["serve", "--secret", SECRET, "--tls-cert", str(cert), "--tls-key", str(key)]
    args += [a for url in urls for a in ("--listen", url)]
    args += ["--allowed-origin", "https://app.example"]
    server = spawn.process(args, cli_env(), command=command)
    for url in urls:
        server.wait_output(f"listening on {url}")
    token = ParticipantToken(room="r", name="cli").to_jwt(SECRET)
    for url in urls[1:]:
        result = run_cli(
            "messaging",
            "list",
            "--url",
            url,
            "--ca",
            str(root),
            "--token",
            token,
            "--json",
            command=command,
        )
        assert_exit(result, EXIT_OK)
        assert result.stdout.strip() == "[]"
    # No --ca: the system's roots do not hold the test CA, so the certificate is refused.
    result = run_cli("messaging", "list", "--url", urls[1], "--token", token, command=command)
    assert_exit(result, EXIT_CONNECT)
    assert token not in server.stdout + server.stderr  # the token is never logged


def test_a_tls_listener_without_a_certificate_is_a_usage_error() -> None:
    result = run_cli("serve", "--secret", SECRET, "--listen", "wss://127.0.0.1:0/")
    assert_one_line_error(result, EXIT_USAGE, "needs --tls-cert")


def test_a_bad_listen_url_is_a_usage_error() -> None:
    result = run_cli("serve", "--secret", SECRET, "--listen", "http://127.0.0.1:80")
    assert_one_line_error(result, EXIT_USAGE, "unsupported URL")


def test_a_token_in_a_url_is_refused() -> None:
    url = "ws://127.0.0.1:9/?token=abc"
    result = run_cli("messaging", "list", "--url", url, "--secret", SECRET, "--room", "r")
    assert_one_line_error(result, EXIT_CONNECT, "no query")
