"""The client driver: a ``ClientSession`` (all client state, sans-IO), a ``ClientPump`` per
connection over whatever transport the runtime's ``Network`` dials, and reconnects. Every
protocol decision stays in ``roomwire.ClientConnection``."""

from __future__ import annotations

import math
import random
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from functools import partial
from ssl import SSLContext
from typing import Any, cast

import anyio
import anyio.abc
import attrs

from roomwire import (
    ClientConfig,
    ClientConnection,
    Code,
    Limits,
    RemoteParticipant,
    RoomMessage,
    State,
)
from roomwire.events import ConnectionClosed

from ._callback_tasks import CallbackTasks
from ._client_pump import ClientPump, wait_for
from ._errors import ConnectionClosedError, RoomError, error_for
from ._layers import client_pump
from ._messaging import Messaging
from ._queue import EventQueue
from ._rpc import Answer, RequestTimeoutError, Responder
from ._service import Service
from ._session import ClientSession, Reply, Verb, retryable
from ._streams import MessageStreamWriter, Streams
from ._token_refresh import TokenKeeper, TokenProvider
from ._url import parse_endpoint
from .events import SendReceipt
from .transport import Network


@attrs.frozen(kw_only=True)
class ReconnectPolicy:
    """Capped exponential backoff with full jitter between reconnect attempts."""

    enabled: bool = True
    first_delay: float = 0.1
    max_delay: float = 5.0
    give_up_after: float = 60.0
    """Seconds of failed attempts after which the client closes for good."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.max_delay, self.first_delay * 2**attempt))


class RoomClient:
    """A connection to one room: ``local_participant`` and ``messaging``."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        token_provider: TokenProvider | None = None,
        room: str | None,
        config: ClientConfig | None,
        reconnect: ReconnectPolicy,
        queue_size: int,
        max_pending_bytes: int,
        network: Network,
        ssl: SSLContext | None = None,
    ) -> None:
        self.url = url
        self._endpoint = parse_endpoint(url)
        self._ssl = ssl
        self._tokens = TokenKeeper(token, token_provider)
        self._room_name = room
        self._config = config or ClientConfig()
        self._policy = reconnect
        self._max_pending = max_pending_bytes
        self._network = network
        self._rng = random.Random()
        self._queue = EventQueue(queue_size)
        self._session = ClientSession(emit=self._queue.put, spawn=self._spawn_callback)
        self._session.responder = responder = Responder(self._spawn_callback, self._quiet)
        self._session.streams = self._streams = Streams(
            self._spawn_callback, self._wake, self._quiet
        )
        self.messaging = Messaging(
            self._session,
            self._queue,
            request=self._request,
            send=self._send,
            call=self._call,
            responder=responder,
            open_stream=self._open_stream,
            streams=self._streams,
        )
        self.service = Service(
            self.messaging, self._session, request=self._request, post=self._post
        )
        """``room.service``: this client as its room's service (docs/PROTOCOL.md §23)."""
        self._session.on_service = self.service.arrived
        self._pump: ClientPump | None = None
        self._up = anyio.Event()
        self._closing = False
        self._close_reason: RoomError | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._spawn_pending: list[tuple[str, Awaitable[object]]] = []
        self._spawn_wake = anyio.Event()
        self.room: str | None = room

    @property
    def connected(self) -> bool:
        return self._pump is not None

    @property
    def local_participant(self) -> RemoteParticipant | None:
        """This client's participant (its id changes with every connection)."""
        return self._session.local_participant

    @property
    def limits(self) -> Limits | None:
        """The limits the server advertised on this connection (None while disconnected)."""
        return self._session.limits

    async def set_attributes(self, attributes: dict[str, Any]) -> None:
        """Merge ``attributes`` into this participant's own (a None value removes a key).

        Returns once the server accepted them; others with presence see
        ``participant_updated``. They are set again on every reconnect.
        """
        await self._request(partial(self._session.set_attributes, attributes=attributes))

    # --- lifecycle ------------------------------------------------------------------------

    def _start(self, tg: anyio.abc.TaskGroup, pump: ClientPump, reenable: Reply | None) -> None:
        self._tg = tg
        tg.start_soon(self._spawner)
        tg.start_soon(self._supervise, pump, reenable)
        if self._tokens.provider is not None:
            tg.start_soon(self._tokens.run, self._refresh_token)

    async def _open(
        self, tg: anyio.abc.TaskGroup, *, again: bool = False
    ) -> tuple[ClientPump, Reply | None]:
        """Connect (the transport's tasks run in ``tg``) and handshake; returns the pump
        once the welcome is in, and the re-enable queued on it, if any."""
        endpoint = self._endpoint
        try:
            token = await self._tokens.for_connect(again=again)
        except Exception as exc:  # the application's provider: a reconnect may try again
            raise ConnectionClosedError(
                f"the token provider failed: {exc!r}", Code.CONNECTION_LOST
            ) from exc
        conn = ClientConnection(
            token=token,
            now=time.time(),
            room=self._room_name,
            config=self._config,
            framing=endpoint.framing,
            resume=self._session.resume if again else None,
        )
        pump = ClientPump(conn, self._session)
        layered = client_pump(
            pump, endpoint, ssl_context=self._ssl, max_message_size=self._config.max_frame_size
        )
        try:
            await self._network.dial(endpoint.host, endpoint.port, layered, tg)
        except OSError as exc:
            raise ConnectionClosedError(
                f"cannot reach {self.url}: {exc.strerror or exc}", Code.CONNECTION_LOST
            ) from None
        welcome = await pump.handshake(self._config.handshake_timeout)
        self.room = welcome.room
        # Reconnecting: the restore is queued before the pump is published, so that a send
        # made as soon as it is up (or already waiting for it) goes out after the re-enable,
        # which the state table allows, instead of failing as "not enabled".
        reenable = self._session.connected(conn, welcome, again=again)
        pump.wake()
        self._pump = pump
        self._up.set()
        return pump, reenable

    async def _supervise(self, pump: ClientPump, reenable: Reply | None) -> None:
        """Run connections one after another: reconnect on retryable losses."""
        while True:
            closed = await pump.run(reenable)
            self._pump = None
            self._up = anyio.Event()
            may_retry = not self._closing and self._policy.enabled
            if not self._session.lost(closed, may_retry=may_retry):
                self._finish(error_for(closed.code, closed.reason))
                return
            reconnected = await self._reconnect(closed)
            if isinstance(reconnected, RoomError):
                self._session.gave_up(reconnected)
                self._finish(reconnected)
                return
            pump, reenable = reconnected

    async def _reconnect(
        self, closed: ConnectionClosed
    ) -> tuple[ClientPump, Reply | None] | RoomError:
        """A new connection, or the error that ended the attempts."""
        assert self._tg is not None
        give_up = anyio.current_time() + self._policy.give_up_after
        attempt = 0
        error: RoomError = ConnectionClosedError(closed.reason, closed.code)
        while anyio.current_time() < give_up:
            await anyio.sleep(self._policy.delay(attempt, self._rng))
            attempt += 1
            try:
                return await self._open(self._tg, again=True)
            except RoomError as exc:
                if not retryable(exc.code):
                    return exc  # e.g. the token expired: retrying cannot help
                error = exc
        return ConnectionClosedError(f"could not reconnect: {error.reason}", error.code)

    def _finish(self, reason: RoomError) -> None:
        self._close_reason = reason
        self._queue.close()
        self.service.end()
        self._up.set()  # wake senders waiting for a connection: they will see the close

    def _spawn_callback(self, name: str, awaitable: Awaitable[object]) -> None:
        # Frames may be applied in a transport callback, outside any task, where no task can
        # be started: the spawner task starts it.
        self._spawn_pending.append((name, awaitable))
        self._spawn_wake.set()

    async def _spawner(self) -> None:
        assert self._tg is not None
        tasks = CallbackTasks(self._tg)
        try:
            while True:
                await self._spawn_wake.wait()
                self._spawn_wake = anyio.Event()
                pending, self._spawn_pending = self._spawn_pending, []
                for name, awaitable in pending:
                    tasks.start(name, awaitable)
        finally:
            for _, awaitable in self._spawn_pending:
                if hasattr(awaitable, "close"):
                    awaitable.close()  # never started: no "never awaited" warning either
            await tasks.aclose()

    async def aclose(self, *, wait_for_answer: bool = True) -> None:
        """Close cleanly: tell the server, wait briefly for its answer (or, when the client's
        scope was cancelled and nothing can read it, for the close to be written), then end
        every task."""
        self._closing = True
        pump = self._pump
        if pump is not None:
            if pump.conn.state not in (State.CLOSING, State.CLOSED):
                pump.conn.close(Code.NORMAL, "client closing")
                pump.wake()
            with anyio.move_on_after(2):
                await (pump.closed if wait_for_answer else pump.close_sent).wait()
            pump.abort()
        self._finish(ConnectionClosedError("the client is closed", Code.NORMAL))

    # --- requests -------------------------------------------------------------------------

    async def _ready(self) -> ClientPump:
        """The current connection once it may take one more request."""
        if self._pump is None and self._close_reason is None:
            with anyio.move_on_after(self._policy.give_up_after):
                await self._up.wait()
        pump = self._pump
        if pump is None:
            raise self._close_reason or ConnectionClosedError(
                "not connected to the server", Code.CONNECTION_LOST
            )
        while pump.conn.outbound_size > self._max_pending and not pump.closed.is_set():
            await pump.wait_drained()  # backpressure: never buffer without bound
        return pump

    async def _request(self, verb: Verb) -> object:
        """Queue a request and wait for its answer (its value, or a typed error)."""
        pump = await self._ready()
        reply = self._session.request(pump.conn, verb)
        pump.wake()
        return await wait_for(reply)

    async def _send(self, verb: Verb, wait: bool) -> SendReceipt | int:
        """Queue a message send; with ``wait``, its receipt once accepted (across
        reconnects: an unanswered send is re-sent with its key), else its request id."""
        pump = await self._ready()
        reply = Reply() if wait else None
        rid = self._session.send(pump.conn, verb, reply)
        pump.wake()
        if reply is None:
            return rid
        return cast(SendReceipt, await wait_for(reply))

    async def _refresh_token(self, token: str) -> None:
        await self._request(partial(ClientConnection.refresh_token, token=token))

    async def _post(self, verb: Verb) -> int:
        """Queue a request without waiting for its answer; returns its request id."""
        pump = await self._ready()
        rid = self._session.post(pump.conn, verb)
        pump.wake()
        return rid

    # --- requests between participants (PROTOCOL.md §24) ---------------------------------

    async def _call(self, verb: Verb, timeout: float | None) -> RoomMessage:
        """Make a call and wait for its one answer; on a timeout or a cancel, cancel it."""
        pump = await self._ready()
        conn = pump.conn
        rid, reply = self._session.call(conn, verb)
        pump.wake()
        try:
            # A bare scope with a deadline: what fail_after does, at half its cost per call.
            deadline = math.inf if timeout is None else anyio.current_time() + timeout
            with anyio.CancelScope(deadline=deadline):
                return cast(RoomMessage, await wait_for(reply))
            raise RequestTimeoutError(f"no answer within {timeout} s", Code.CALL_CANCELLED)
        finally:
            # Still waiting (timed out, or the caller was cancelled): the callee's handler is
            # cancelled too. The call's late answer settles a reply nobody waits for.
            if not reply.settled and _live(conn) and self._pump is pump:
                conn.cancel_call(rid)
                pump.wake()

    def _quiet(self, conn: ClientConnection, verb: Answer) -> None:
        """Queue a request nobody waits for (a handler's answer, a stream's accept) on the
        connection it belongs to, if that is still up (else the server dropped what it
        answers already). A refusal (the caller cancelled meanwhile) is dropped."""
        pump = self._pump
        if pump is None or pump.conn is not conn or not _live(conn):
            return
        self._session.request(conn, verb)
        pump.wake()

    def _wake(self) -> None:
        pump = self._pump
        if pump is not None:
            pump.wake()

    # --- streams (PROTOCOL.md §24.4) ----------------------------------------------------

    async def _open_stream(self, to: str, header: dict[str, Any]) -> MessageStreamWriter:
        """Open a stream and wait for the reader to accept it; its writer."""
        pump = await self._ready()
        conn = pump.conn
        opening = self._streams.opening(conn, to, header)
        self._session.request(conn, lambda c: c.open_stream(to, header), opening)
        pump.wake()
        try:
            await wait_for(opening)
        finally:
            # Cancelled before the accept: the stream is aborted when the accept arrives.
            opening.abandoned = not opening.settled
        assert opening.writer is not None  # settled without an error: the ack made it
        return opening.writer


def _live(conn: ClientConnection) -> bool:
    return conn.state not in (State.CLOSING, State.CLOSED)


@asynccontextmanager
async def connect(
    url: str,
    *,
    network: Network,
    token: str | None = None,
    token_provider: TokenProvider | None = None,
    room: str | None = None,
    config: ClientConfig | None = None,
    reconnect: ReconnectPolicy | bool = True,
    events_queue_size: int = 1000,
    max_pending_bytes: int = 1024 * 1024,
    ssl: SSLContext | None = None,
) -> AsyncIterator[RoomClient]:
    """Connect to a room server at ``url`` (``tcp://host:port``, ``tls://host:port``,
    ``ws://host:port/path`` or ``wss://host:port/path``) with a participant token, over
    ``network`` (the runtime packages pass theirs). The token goes in the first frame, never
    in the URL. TLS verifies the server's certificate against the system's trust roots;
    ``ssl`` (a client ``SSLContext``) overrides that, e.g. to trust a private CA.

    ``token_provider`` (``async () -> token``, instead of or with ``token``) keeps the
    connection alive past a token's ``exp``: it is called at 80 % of each token's lifetime
    (the new token goes to the server in a ``refresh`` request) and for every reconnect.

    Raises a ``RoomError`` subclass when the server refuses the token or cannot be reached.
    """
    policy = (
        reconnect if isinstance(reconnect, ReconnectPolicy) else ReconnectPolicy(enabled=reconnect)
    )
    client = RoomClient(
        url,
        token=token,
        token_provider=token_provider,
        room=room,
        config=config,
        reconnect=policy,
        queue_size=events_queue_size,
        max_pending_bytes=max_pending_bytes,
        network=network,
        ssl=ssl,
    )
    # The first connection's and the body's errors are re-raised outside the task group:
    # inside, both runtimes would wrap them in an ExceptionGroup, and callers must be able to
    # write ``except ForbiddenError`` around ``connect()``.
    error: Exception | None = None
    cancelled = False
    async with anyio.create_task_group() as tg:
        try:
            pump, reenable = await client._open(tg)
        except RoomError as exc:
            error = exc
            tg.cancel_scope.cancel()
        else:
            client._start(tg, pump, reenable)
            try:
                yield client
            except Exception as exc:
                error = exc
            except BaseException:
                cancelled = True  # the pump is cancelled too: nobody will read the answer
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    await client.aclose(wait_for_answer=not cancelled)
                tg.cancel_scope.cancel()
    if error is not None:
        raise error
