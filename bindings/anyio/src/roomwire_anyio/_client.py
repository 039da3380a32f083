"""The client driver: one pump per connection (read -> feed -> drain events -> write), plus
reconnects. Every protocol decision stays in ``roomwire.ClientConnection``."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal, overload

import anyio
import anyio.abc
import attrs

from roomwire import (
    NEED_DATA,
    ClientConfig,
    ClientConnection,
    Code,
    Limits,
    LocalProtocolError,
    RemoteParticipant,
    RemoteProtocolError,
    RoomMessage,
    State,
)
from roomwire.events import (
    Connected,
    ConnectionClosed,
    Event,
    MessageReceived,
    MessagingDisabled,
    MessagingEnabled,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
    RequestAcked,
    RequestRefused,
)

from ._client_links import Link, Waiter, dial
from ._errors import ConnectionClosedError, RoomError, error_for, from_local
from ._queue import EventQueue
from ._url import parse_url
from .events import Disconnected, MessagingEvent, Reconnected, SendFailed

log = logging.getLogger("roomwire.client")

Recipient = RemoteParticipant | str
Callback = Callable[[Any], object]
CALLBACK_EVENTS = ("message", "participant_added", "participant_removed", "participant_updated")


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


class Messaging:
    """``room.messaging``: enable, presence, send, broadcast, callbacks and events."""

    def __init__(self, room: RoomClient, queue_size: int) -> None:
        self._room = room
        self._view: dict[str, RemoteParticipant] = {}
        self._callbacks: dict[str, list[Callback]] = {name: [] for name in CALLBACK_EVENTS}
        self._queue = EventQueue(queue_size)
        self._enabled = False
        self._presence = True

    # --- presence -------------------------------------------------------------------------

    @property
    def remote_participants(self) -> list[RemoteParticipant]:
        """Participants with messaging enabled, kept current as events arrive."""
        return list(self._view.values())

    def get_participant(self, participant_id: str) -> RemoteParticipant | None:
        return self._view.get(participant_id)

    def get_participant_by_name(self, name: str) -> RemoteParticipant | None:
        """The first present participant with this name (names are not unique)."""
        return next((p for p in self._view.values() if p.name == name), None)

    @property
    def enabled(self) -> bool:
        return self._enabled

    # --- requests -------------------------------------------------------------------------

    async def enable(self, *, presence: bool = True) -> None:
        """Enable messaging; returns once the presence snapshot is in."""
        self._presence = presence
        await self._room._request(lambda conn: conn.enable(presence=presence), wait=True)
        self._enabled = True

    async def disable(self) -> None:
        """Disable messaging; presence is cleared (``participant_removed`` for each)."""
        await self._room._request(lambda conn: conn.disable(), wait=True)
        self._enabled = False

    @overload
    async def send_message(
        self,
        *,
        to: Recipient | Sequence[Recipient],
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[True] = True,
    ) -> str: ...

    @overload
    async def send_message(
        self,
        *,
        to: Recipient | Sequence[Recipient],
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[False],
    ) -> int: ...

    async def send_message(
        self,
        *,
        to: Recipient | Sequence[Recipient],
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: bool = True,
    ) -> str | int:
        """Send to a participant, an id, or a list of them.

        With ``wait=True`` (default) returns the server's message id once accepted, or raises a
        typed error. With ``wait=False`` returns the request id once the frame is queued; a
        refusal then arrives as a ``SendFailed`` event.
        """
        ids = (
            [_participant_id(to)]
            if isinstance(to, RemoteParticipant | str)
            else [_participant_id(r) for r in to]
        )
        result: str | int = await self._room._request(
            lambda conn: conn.send_message(ids, type, message, attachment), wait=wait
        )
        return result

    @overload
    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[True] = True,
    ) -> str: ...

    @overload
    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: Literal[False],
    ) -> int: ...

    async def broadcast_message(
        self,
        *,
        type: str,
        message: dict[str, Any],
        attachment: bytes | None = None,
        wait: bool = True,
    ) -> str | int:
        """Send to every other participant with messaging enabled (see ``send_message``)."""
        result: str | int = await self._room._request(
            lambda conn: conn.broadcast_message(type, message, attachment), wait=wait
        )
        return result

    # --- delivery -------------------------------------------------------------------------

    def on(self, event: str, callback: Callback) -> None:
        """Call ``callback`` for ``message`` (a RoomMessage) or ``participant_added`` /
        ``participant_removed`` / ``participant_updated`` (a RemoteParticipant). Async
        callbacks run as their own tasks; neither kind can stall the read loop for long."""
        if event not in self._callbacks:
            raise ValueError(f"unknown event {event!r}; expected one of {CALLBACK_EVENTS}")
        self._callbacks[event].append(callback)

    def off(self, event: str, callback: Callback) -> None:
        self._callbacks[event].remove(callback)

    def events(self) -> AsyncIterator[MessagingEvent]:
        """Typed events in order, through a bounded queue: when it is full, events are
        dropped and an ``EventsDropped`` with their count comes next. Ends on close."""
        return self._queue.__aiter__()

    def _emit(self, name: str, value: RoomMessage | RemoteParticipant) -> None:
        for callback in self._callbacks[name]:
            try:
                result = callback(value)
            except Exception:
                log.exception("%s callback failed", name)
                continue
            if result is not None and hasattr(result, "__await__"):
                self._room._spawn_callback(name, result)

    def _apply_snapshot(self, participants: Sequence[RemoteParticipant]) -> None:
        """Replace the view, telling callbacks what changed (all new on first enable)."""
        fresh = {p.id: p for p in participants}
        old, self._view = self._view, fresh
        for participant in old.values():
            if participant.id not in fresh:
                self._emit("participant_removed", participant)
        for participant in participants:
            if participant.id not in old:
                self._emit("participant_added", participant)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, MessageReceived):
            self._queue.put(event)
            self._emit("message", event.message)
        elif isinstance(event, ParticipantAdded | ParticipantUpdated):
            self._view[event.participant.id] = event.participant
            self._queue.put(event)
            added = isinstance(event, ParticipantAdded)
            self._emit("participant_added" if added else "participant_updated", event.participant)
        elif isinstance(event, ParticipantRemoved):
            self._view.pop(event.participant.id, None)
            self._queue.put(event)
            self._emit("participant_removed", event.participant)
        elif isinstance(event, MessagingEnabled):
            self._apply_snapshot(event.participants)
            self._queue.put(event)
        elif isinstance(event, MessagingDisabled):
            self._apply_snapshot(())
            self._queue.put(event)


class RoomClient:
    """A connection to one room: ``local_participant`` and ``messaging``."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        room: str | None,
        config: ClientConfig | None,
        reconnect: ReconnectPolicy,
        queue_size: int,
        max_pending_bytes: int,
    ) -> None:
        self.url = url
        self._host, self._port = parse_url(url)
        self._token = token
        self._room_name = room
        self._config = config or ClientConfig()
        self._policy = reconnect
        self._max_pending = max_pending_bytes
        self._rng = random.Random()
        self.messaging = Messaging(self, queue_size)
        self._link: Link | None = None
        self._up = anyio.Event()
        self._closing = False
        self._close_reason: RoomError | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._spawn_pending: list[tuple[str, Any]] = []
        self._spawn_wake = anyio.Event()
        self._me: RemoteParticipant | None = None
        self.room: str | None = room
        self._attributes: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        return self._link is not None

    @property
    def local_participant(self) -> RemoteParticipant | None:
        """This client's participant (its id changes with every connection)."""
        return self._me if self._link is None else self._link.conn.local_participant

    @property
    def limits(self) -> Limits | None:
        """The limits the server advertised on this connection (None while disconnected)."""
        return None if self._link is None else self._link.conn.limits

    async def set_attributes(self, attributes: dict[str, Any]) -> None:
        """Merge ``attributes`` into this participant's own (a None value removes a key).

        Returns once the server accepted them; others with presence see
        ``participant_updated``. They are set again on every reconnect.
        """
        await self._request(lambda conn: conn.set_attributes(attributes), wait=True)
        for key, value in attributes.items():
            if value is None:
                self._attributes.pop(key, None)
            else:
                self._attributes[key] = value

    # --- lifecycle ------------------------------------------------------------------------

    def _start(self, tg: anyio.abc.TaskGroup, link: Link) -> None:
        self._tg = tg
        tg.start_soon(self._spawner)
        tg.start_soon(self._supervise, link)

    async def _open(self) -> Link:
        """Connect, handshake, and return the link once the welcome is in."""
        conn = ClientConnection(
            token=self._token, now=time.time(), room=self._room_name, config=self._config
        )
        try:
            link = await dial(self._host, self._port, conn)
        except OSError as exc:
            raise ConnectionClosedError(
                f"cannot reach {self.url}: {exc.strerror or exc}", Code.CONNECTION_LOST
            ) from None
        try:
            with anyio.fail_after(self._config.handshake_timeout):
                await link.send_now()
                while True:
                    event = conn.next_event(time.time())
                    if event is NEED_DATA:
                        await link.receive_more()
                    elif isinstance(event, Connected):
                        break
                    elif isinstance(event, ConnectionClosed):
                        raise error_for(event.code, event.reason)
        except TimeoutError:
            await link.hang_up()
            raise ConnectionClosedError(
                "no welcome from the server in time", Code.HANDSHAKE_TIMEOUT
            ) from None
        except RemoteProtocolError as exc:
            await link.hang_up()
            raise ConnectionClosedError(f"bad handshake: {exc.reason}", exc.code) from None
        except BaseException:
            with anyio.CancelScope(shield=True):
                await link.hang_up()
            raise
        self._me, self.room = event.participant, event.room
        if self._attributes:
            # Reconnecting: restore our attributes first, so the re-enable announces them.
            link.waiters[conn.set_attributes(self._attributes)] = None
            link.wake()
        if self.messaging.enabled:
            # Reconnecting: queue the re-enable before the link is published, so that a send
            # made as soon as it is up (or already waiting for it) goes out after the enable,
            # which the state table allows, instead of failing as "not enabled".
            rid = conn.enable(presence=self.messaging._presence)
            link.reenable = link.waiters[rid] = Waiter()
            link.wake()
        self._link = link
        self._up.set()
        return link

    async def _supervise(self, link: Link) -> None:
        """Run links one after another: reconnect on retryable losses."""
        while True:
            closed = await self._run_link(link)
            retry = (
                not self._closing
                and self._policy.enabled
                and (closed.code.info.retry or closed.code is Code.CONNECTION_LOST)
            )
            self.messaging._queue.put(
                Disconnected(code=closed.code, reason=closed.reason, reconnecting=retry)
            )
            if not retry:
                self._finish(error_for(closed.code, closed.reason))
                return
            reconnected = await self._reconnect(closed)
            if isinstance(reconnected, RoomError):
                # Say why events() ends: the last Disconnected said a reconnect would follow.
                self.messaging._queue.put(
                    Disconnected(
                        code=reconnected.code, reason=reconnected.reason, reconnecting=False
                    )
                )
                self._finish(reconnected)
                return
            link = reconnected

    async def _reconnect(self, closed: ConnectionClosed) -> Link | RoomError:
        """A new link, or the error that ended the attempts."""
        give_up = anyio.current_time() + self._policy.give_up_after
        attempt = 0
        error: RoomError = ConnectionClosedError(closed.reason, closed.code)
        while anyio.current_time() < give_up:
            await anyio.sleep(self._policy.delay(attempt, self._rng))
            attempt += 1
            try:
                link = await self._open()
            except RoomError as exc:
                if not exc.code.info.retry and exc.code is not Code.CONNECTION_LOST:
                    return exc  # e.g. the token expired: retrying cannot help
                error = exc
                continue
            assert self.local_participant is not None
            self.messaging._queue.put(Reconnected(participant=self.local_participant))
            return link
        return ConnectionClosedError(f"could not reconnect: {error.reason}", error.code)

    async def _run_link(self, link: Link) -> ConnectionClosed:
        """The pump for one transport; returns how it closed."""
        async with anyio.create_task_group() as tg:
            link.start(tg)
            tg.start_soon(self._timer, link)
            if link.reenable is not None:
                tg.start_soon(self._reenable, link.reenable)
            closed = await link.read_until_closed(partial(self._drain, link))
            link.wake()
            with anyio.move_on_after(1):
                await link.closed.wait()
            link.abort()
            tg.cancel_scope.cancel()
        self._link = None
        self._me = link.conn.local_participant  # as last seen, attributes included
        self._up = anyio.Event()
        self._fail_waiters(link, closed)
        return closed

    async def _timer(self, link: Link) -> None:
        conn = link.conn
        while (deadline := conn.next_deadline()) is not None:
            await anyio.sleep(max(deadline - time.time(), 0.0))
            conn.handle_timer(time.time())
            link.wake()
            if conn.state is State.CLOSED:
                # The close frame is flushed and the transport closed, which ends the
                # reading; a peer too dead to take the frame gets it dropped anyway.
                with anyio.move_on_after(1):
                    await link.closed.wait()
                await link.hang_up()
                return

    async def _reenable(self, waiter: Waiter) -> None:
        try:
            await waiter.wait()
        except RoomError as exc:
            log.warning("could not re-enable messaging after reconnecting: %s", exc.reason)

    def _drain(self, link: Link) -> ConnectionClosed | None:
        """Apply every buffered frame; returns the close event once the connection ends."""
        conn = link.conn
        try:
            while (event := conn.next_event(time.time())) is not NEED_DATA:
                if isinstance(event, ConnectionClosed):
                    link.wake()
                    return event
                self._handle(link, event)
        except RemoteProtocolError as exc:
            log.warning("closing: the server broke the protocol: %s", exc.reason)
            link.wake()
            return ConnectionClosed(code=exc.code, reason=exc.reason, by_peer=False)
        if conn.outbound_size:
            link.wake()  # replies the frames called for (pongs)
        return None

    def _handle(self, link: Link, event: Event) -> None:
        if isinstance(event, RequestAcked | RequestRefused | MessagingEnabled | MessagingDisabled):
            waiter = link.waiters.pop(event.request_id, None)
            if isinstance(event, RequestRefused):
                error = error_for(event.code, event.reason)
                if waiter is not None:
                    waiter.resolve(error=error)
                else:
                    failed = SendFailed(
                        request_id=event.request_id, code=event.code, reason=event.reason
                    )
                    self.messaging._queue.put(failed)
                return
            if waiter is not None:
                waiter.resolve(event.message_id if isinstance(event, RequestAcked) else None)
        self.messaging._dispatch(event)

    def _fail_waiters(self, link: Link, closed: ConnectionClosed) -> None:
        for waiter in link.waiters.values():
            if waiter is not None:
                waiter.resolve(error=ConnectionClosedError(closed.reason, closed.code))
        link.waiters.clear()

    def _finish(self, reason: RoomError) -> None:
        self._close_reason = reason
        self.messaging._queue.close()
        self._up.set()  # wake senders waiting for a connection: they will see the close

    def _spawn_callback(self, name: str, awaitable: Any) -> None:
        # Frames may be applied in a transport callback, outside any task, where no task can
        # be started: the spawner task starts it.
        self._spawn_pending.append((name, awaitable))
        self._spawn_wake.set()

    async def _spawner(self) -> None:
        assert self._tg is not None
        try:
            while True:
                await self._spawn_wake.wait()
                self._spawn_wake = anyio.Event()
                pending, self._spawn_pending = self._spawn_pending, []
                for name, awaitable in pending:
                    self._tg.start_soon(_run_callback, name, awaitable)
        finally:
            for _, awaitable in self._spawn_pending:
                if hasattr(awaitable, "close"):
                    awaitable.close()  # never started: no "never awaited" warning either

    async def aclose(self, *, wait_for_answer: bool = True) -> None:
        """Close cleanly: tell the server, wait briefly for its answer (or, when the client's
        scope was cancelled and nothing can read it, for the close to be written), then end
        every task."""
        self._closing = True
        link = self._link
        if link is not None:
            if link.conn.state not in (State.CLOSING, State.CLOSED):
                link.conn.close(Code.NORMAL, "client closing")
                link.wake()
            with anyio.move_on_after(2):
                await (link.closed if wait_for_answer else link.close_sent).wait()
            link.abort()
        self._finish(ConnectionClosedError("the client is closed", Code.NORMAL))

    # --- requests -------------------------------------------------------------------------

    async def _link_up(self) -> Link:
        if self._link is None and self._close_reason is None:
            with anyio.move_on_after(self._policy.give_up_after):
                await self._up.wait()
        if self._link is None:
            raise self._close_reason or ConnectionClosedError(
                "not connected to the server", Code.CONNECTION_LOST
            )
        return self._link

    async def _request(
        self,
        verb: Callable[[ClientConnection], int],
        *,
        wait: bool,
        link: Link | None = None,
    ) -> Any:
        link = link or await self._link_up()
        while link.conn.outbound_size > self._max_pending and not link.closed.is_set():
            await link.wait_drained()  # backpressure: never buffer without bound
        try:
            rid = verb(link.conn)
        except LocalProtocolError as exc:
            if link.conn.state in (State.CLOSING, State.CLOSED):
                raise ConnectionClosedError(
                    "the connection is closing", Code.CONNECTION_LOST
                ) from None
            raise from_local(exc) from None
        link.wake()
        if not wait:
            link.waiters[rid] = None
            return rid
        waiter = link.waiters[rid] = Waiter()
        return await waiter.wait()


async def _run_callback(name: str, awaitable: Any) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("%s callback failed", name)


def _participant_id(recipient: Recipient) -> str:
    return recipient.id if isinstance(recipient, RemoteParticipant) else recipient


@asynccontextmanager
async def connect(
    url: str,
    *,
    token: str,
    room: str | None = None,
    config: ClientConfig | None = None,
    reconnect: ReconnectPolicy | bool = True,
    events_queue_size: int = 1000,
    max_pending_bytes: int = 1024 * 1024,
) -> AsyncIterator[RoomClient]:
    """Connect to a room server at ``url`` (``tcp://host:port``) with a participant token.

    Raises a ``RoomError`` subclass when the server refuses the token or cannot be reached.
    """
    policy = (
        reconnect if isinstance(reconnect, ReconnectPolicy) else ReconnectPolicy(enabled=reconnect)
    )
    client = RoomClient(
        url,
        token=token,
        room=room,
        config=config,
        reconnect=policy,
        queue_size=events_queue_size,
        max_pending_bytes=max_pending_bytes,
    )
    # Open the first connection outside the task group, and re-raise the body's errors
    # outside it too: inside, both runtimes would wrap them in an ExceptionGroup, and callers
    # must be able to write ``except ForbiddenError`` around ``connect()``.
    link = await client._open()
    body_error: Exception | None = None
    cancelled = False
    async with anyio.create_task_group() as tg:
        client._start(tg, link)
        try:
            yield client
        except Exception as exc:
            body_error = exc
        except BaseException:
            cancelled = True  # the reader is cancelled too: nobody will read the answer
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose(wait_for_answer=not cancelled)
            tg.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
