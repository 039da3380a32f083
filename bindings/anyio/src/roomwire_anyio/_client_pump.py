"""The client side's pump: one per connection, whatever transport carries it.

It waits for the welcome, then applies what arrives through the ``ClientSession`` (read ->
feed -> drain events -> write), re-arms the connection's timer, and tells senders when the
output went out (backpressure) and when the transport is gone.
"""

from __future__ import annotations

import logging
import time

import anyio

from roomwire import NEED_DATA, ClientConnection, Code, Framing, RemoteProtocolError, State
from roomwire.events import Connected, ConnectionClosed

from ._errors import ConnectionClosedError, RoomError, error_for
from ._session import ClientSession, Reply
from .transport import Transport

log = logging.getLogger("roomwire.client")

LOST = ConnectionClosed(code=Code.CONNECTION_LOST, reason="the connection was lost", by_peer=True)


class ClientPump:
    """Drives one ``ClientConnection`` (a ``Pump[ClientConnection]``)."""

    def __init__(self, conn: ClientConnection, session: ClientSession) -> None:
        self.conn = conn
        self._session = session
        self.transport: Transport | None = None
        self.welcome: Connected | None = None
        self.failure: RoomError | None = None
        """Why the handshake failed."""
        self.outcome: ConnectionClosed | None = None
        """How the connection closed, once it has."""
        self._answered = anyio.Event()  # the welcome or the close is in
        self._over = anyio.Event()  # the close is in
        self._live = False  # after the welcome: frames go to the session
        self.close_sent = anyio.Event()
        self.closed = anyio.Event()
        self._drained: anyio.Event | None = None

    # --- what the transport calls -----------------------------------------------------------

    def attach(
        self, transport: Transport, peer: str, framing: Framing = Framing.STREAM
    ) -> ClientConnection:
        # The connection was made before dialling, with the framing its URL calls for.
        self.transport = transport
        return self.conn

    def received(self, conn: ClientConnection) -> bool:
        if self.outcome is not None:
            return True
        if self._live:
            closed = self._session.drain(conn, time.time())
        elif self.welcome is None:
            closed = self._handshake(conn)
        else:
            return False  # welcomed: the rest is applied once the pump runs
        if closed is not None:
            self._close(closed)
            return True
        if conn.outbound_size:
            self.wake()  # replies the frames called for (pongs)
        return False

    def wrote(self, conn: ClientConnection) -> None:
        if conn.state in (State.CLOSING, State.CLOSED):
            self.close_sent.set()
        self._release()

    def ended(self, conn: ClientConnection) -> None:
        if self.outcome is None and (self._live or self.welcome is None):
            self._close(LOST)  # else run() applies what is buffered (the EOF included)
        self.closed.set()
        self.close_sent.set()
        self._release()  # senders held back by backpressure must see the close

    # --- what the client calls --------------------------------------------------------------

    def wake(self) -> None:
        assert self.transport is not None
        self.transport.wake()

    def abort(self) -> None:
        assert self.transport is not None
        self.transport.abort()

    async def handshake(self, timeout: float) -> Connected:
        """Send the hello and wait for the welcome; raises the typed error otherwise."""
        self.wake()
        try:
            with anyio.move_on_after(timeout):
                await self._answered.wait()
        except BaseException:
            self.abort()
            raise
        if self.welcome is not None:
            return self.welcome
        self.abort()
        if self.failure is not None:
            raise self.failure
        raise ConnectionClosedError("no welcome from the server in time", Code.HANDSHAKE_TIMEOUT)

    async def run(self, reenable: Reply | None) -> ConnectionClosed:
        """Apply what arrives until the connection ends; returns how it closed."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._timer)
            if reenable is not None:
                tg.start_soon(_report_reenable, reenable)
            self._live = True
            self.received(self.conn)  # what arrived since the welcome
            await self._over.wait()
            with anyio.move_on_after(1):
                await self.closed.wait()
            self.abort()
            tg.cancel_scope.cancel()
        assert self.outcome is not None
        return self.outcome

    async def wait_drained(self) -> None:
        """Until the next write (backpressure: a sender waits while too much is queued)."""
        if self._drained is None:
            self._drained = anyio.Event()
        await self._drained.wait()

    # --- inside -------------------------------------------------------------------------------

    def _handshake(self, conn: ClientConnection) -> ConnectionClosed | None:
        try:
            while (event := conn.next_event(time.time())) is not NEED_DATA:
                if isinstance(event, Connected):
                    self.welcome = event
                    self._answered.set()
                    return None
                if isinstance(event, ConnectionClosed):
                    self.failure = error_for(event.code, event.reason)
                    return event
        except RemoteProtocolError as exc:
            self.failure = ConnectionClosedError(f"bad handshake: {exc.reason}", exc.code)
            return ConnectionClosed(code=exc.code, reason=exc.reason, by_peer=False)
        return None

    def _close(self, closed: ConnectionClosed) -> None:
        self.outcome = closed
        self._answered.set()
        self._over.set()
        self.wake()  # the close frame, if the core queued one

    def _release(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    async def _timer(self) -> None:
        conn = self.conn
        while (deadline := conn.next_deadline()) is not None:
            await anyio.sleep(max(deadline - time.time(), 0.0))
            conn.handle_timer(time.time())
            self.wake()
            if conn.state is State.CLOSED:
                # The close frame is flushed and the transport closed, which ends the
                # reading; a peer too dead to take the frame gets it dropped anyway.
                with anyio.move_on_after(1):
                    await self.closed.wait()
                self.abort()
                return


async def wait_for(reply: Reply) -> object:
    """The reply's value once it is in, or its error raised."""
    if not reply.settled:
        done = anyio.Event()
        reply.on_settle = done.set
        await done.wait()
    return reply.result()


async def _report_reenable(reply: Reply) -> None:
    try:
        await wait_for(reply)
    except RoomError as exc:
        log.warning("could not re-enable messaging after reconnecting: %s", exc.reason)
