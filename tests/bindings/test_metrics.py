"""``serve(metrics=...)``: Prometheus metrics and a health check over HTTP, scraped with a real
client (urllib) on both runtimes, counting what the test did."""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import anyio
import pytest

from roomwire import ParticipantToken

from . import SECRET, WAIT, samples, scrape, wait_until

pytestmark = pytest.mark.anyio


def _token(name: str) -> str:
    return ParticipantToken(room="lobby", name=name).to_jwt(SECRET)


async def test_metrics_count_traffic_refusals_and_closes(rw: ModuleType) -> None:
    async with rw.serve(secret=SECRET, metrics="http://127.0.0.1:0") as server:
        assert server.metrics_url.startswith("http://127.0.0.1:")
        async with rw.connect(server.url, token=_token("alice")) as alice:
            await alice.messaging.enable()
            async with rw.connect(server.url, token=_token("bob")) as bob:
                await bob.messaging.enable()
                await alice.messaging.send_message(to=bob.local_participant, type="t", message={})
                await alice.messaging.broadcast_message(type="t", message={})
                with pytest.raises(rw.NotFoundError):
                    await alice.messaging.send_message(to="nobody", type="t", message={})
                status, content_type, body = await scrape(f"{server.metrics_url}/metrics")
            assert status == 200
            assert content_type.startswith("text/plain; version=")
            during = samples(body)
            assert during[("roomwire_connections", ())] == 2
            assert during[("roomwire_rooms", ())] == 1
            assert during[("roomwire_connections_accepted_total", ())] == 2
            assert during[("roomwire_messages_routed_total", ())] == 2
            assert during[("roomwire_deliveries_total", ())] == 2
            assert during[("roomwire_refusals_total", (("code", "NOT_FOUND"),))] == 1
            assert during[("roomwire_slow_consumer_closes_total", ())] == 0
            # Every read the server applied was timed: the handshakes, enables and sends.
            assert during[("roomwire_route_seconds_count", ())] >= 7
            assert during[("roomwire_route_seconds_sum", ())] > 0
            assert ("roomwire_backplane_healthy", ()) not in during  # one node: no backplane
            await wait_until(lambda: server.core.connection_count == 1)
            after = samples((await scrape(f"{server.metrics_url}/metrics"))[2])
            assert after[("roomwire_closes_total", (("code", "NORMAL"),))] == 1
            assert after[("roomwire_connections", ())] == 1


async def test_healthz_and_other_paths(rw: ModuleType) -> None:
    async with rw.serve(secret=SECRET, metrics="http://127.0.0.1:0") as server:
        status, content_type, body = await scrape(f"{server.metrics_url}/healthz")
        assert (status, content_type) == (200, "application/json")
        assert body == '{"status": "ok", "backplane": null}\n'
        assert (await scrape(f"{server.metrics_url}/other"))[0] == 404
        assert (await scrape(f"{server.metrics_url}/metrics?x=1"))[0] == 200


async def test_the_endpoint_shrugs_off_bad_requests(rw: ModuleType) -> None:
    async with rw.serve(secret=SECRET, metrics="http://127.0.0.1:0") as server:
        port = int(server.metrics_url.rsplit(":", 1)[1])
        requests = [
            b"POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
            b"not http at all\r\n\r\n",
            b"",  # connects and leaves
        ]
        answers = []
        for request in requests:
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send_eof() if not request else await stream.send(request)
                with anyio.fail_after(WAIT):
                    answers.append(await _read_all(stream))
        assert answers[0].startswith(b"HTTP/1.1 405 ")
        assert answers[1:] == [b"", b""]
        assert (await scrape(f"{server.metrics_url}/healthz"))[0] == 200  # still serving


async def _read_all(stream: Any) -> bytes:
    data = b""
    try:
        while True:
            data += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return data


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:0", "http://127.0.0.1", "http://:9464"])
async def test_a_bad_metrics_url_is_refused(rw: ModuleType, url: str) -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        async with rw.serve(secret=SECRET, metrics=url):
            pass


async def test_metrics_without_prometheus_client_name_the_extra(
    rw: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name: None if name == "prometheus_client" else real(name),
    )
    with pytest.raises(ImportError, match=r"roomwire-asyncio\[metrics\]"):
        async with rw.serve(secret=SECRET, metrics="http://127.0.0.1:0"):
            pass
