"""Services across Redis nodes are not carried over the backplane yet: a node refuses a
service clearly (docs/PROTOCOL.md §23.1) instead of deciding only its own node's messages."""

from __future__ import annotations

import pytest
from roomwire_asyncio import ServiceError

from roomwire import Code

from .conftest import Join, Node

pytestmark = pytest.mark.anyio


async def test_a_node_of_a_cluster_refuses_a_service(node: Node, join: Join) -> None:
    n1 = await node("n1")
    svc = await join(n1.url, "svc", intercept=True, hidden=True)
    with pytest.raises(ServiceError) as caught:
        await svc.service.attach()
    assert caught.value.code is Code.SERVICE_UNAVAILABLE
    assert "cluster" in caught.value.reason
