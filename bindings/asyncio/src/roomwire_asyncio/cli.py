"""The ``roomwire`` command: serve, token, demo, and messaging list / send / broadcast /
request / stream / listen.

Settings come from flags, then ``ROOMWIRE_*`` environment variables (and for ``serve``, then
a ``--config`` file). Errors print one line (no traceback) and exit with a documented code
(``roomwire --help``). ``main(runtime="trio")`` runs the same commands on trio
(``python -m roomwire_trio``).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import signal
import ssl
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TextIO

import anyio
import roomwire_anyio as rw
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from roomwire_anyio import demo, demo_service

import roomwire
from roomwire import Code, ParticipantToken, RemoteParticipant, RoomMessage, TokenError
from roomwire.events import (
    MessageReceived,
    ParticipantAdded,
    ParticipantRemoved,
    ParticipantUpdated,
)

from . import _serve_config, _tls_files
from ._run import run
from ._version import __version__

DEFAULT_PORT = 7890
DEFAULT_URL = f"tcp://127.0.0.1:{DEFAULT_PORT}"

EXIT_CODES = {
    0: "success (for send / broadcast: the server acknowledged the message)",
    1: "unexpected error",
    2: "usage error: bad flag, malformed --data, missing credentials",
    3: "cannot connect: bad URL, server unreachable, connection lost, cannot listen (serve)",
    4: "token refused: invalid, expired, wrong key or algorithm, other room",
    5: "not found: no such participant (or not messaging-enabled)",
    6: "forbidden: the token does not grant this",
    7: "too large: the message is over the server's limit",
    8: "invalid request: the server refused the message's content",
    9: "rate limited: over the server's request rate for this connection",
    10: "request: the participant called answered with an error (no handler, handler failed,"
    " or the application's own code; printed)",
    11: "request: no answer within --timeout (the call was cancelled)",
    12: "stream: the reader refused or aborted the stream, or left before the end",
    130: "interrupted (Ctrl-C or SIGTERM) before finishing; serve stops on a signal and exits 0",
}
_EXIT_FOR_ERROR: dict[type[rw.RoomError], int] = {
    rw.NotFoundError: 5,
    rw.ForbiddenError: 6,
    rw.TooLargeError: 7,
    rw.InvalidRequestError: 8,
    rw.NotEnabledError: 8,
    rw.RateLimitedError: 9,
    rw.RequestTimeoutError: 11,
    rw.StreamError: 12,
}
_TOKEN_CODES = {
    Code.TOKEN_INVALID,
    Code.TOKEN_EXPIRED,
    Code.TOKEN_BAD_SIGNATURE,
    Code.TOKEN_BAD_ALGORITHM,
    Code.ROOM_MISMATCH,
}

Runtime = Literal["asyncio", "trio"]
_runtime: Runtime = "asyncio"
"""What ``main`` was asked to run on; the commands read it when they start their loop."""

app = typer.Typer(
    name="roomwire",
    help="Room messaging for humans, agents and services.",
    # One code per line (Rich keeps the line breaks of an epilog).
    epilog="Exit codes:\n\n" + "\n".join(f"{k:>4}  {v}" for k, v in EXIT_CODES.items()),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
messaging_app = typer.Typer(help="Messaging in a room: list, send, broadcast, listen.")
app.add_typer(messaging_app, name="messaging")


def _print_version(value: bool) -> None:
    if value:
        print(f"roomwire {__version__} (core {roomwire.__version__}, runtime {_runtime})")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Room messaging for humans, agents and services."""


out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# --- shared options -------------------------------------------------------------------------

Url = Annotated[
    str,
    typer.Option(
        envvar="ROOMWIRE_URL",
        help="Server URL: tcp://host:port, tls://host:port, ws://host:port/path or wss://...",
    ),
]
Ca = Annotated[
    Path | None,
    typer.Option(
        "--ca",
        envvar="ROOMWIRE_CA",
        dir_okay=False,
        help="Also trust this CA certificate (PEM) for tls:// and wss://.",
    ),
]
Token = Annotated[
    str | None,
    typer.Option(envvar="ROOMWIRE_TOKEN", help="Participant token (else minted from --secret)."),
]
Secret = Annotated[
    str | None,
    typer.Option(envvar="ROOMWIRE_SECRET", help="Server secret, to mint a token for --name."),
]
ServerSecret = Annotated[
    str | None,
    typer.Option(
        envvar="ROOMWIRE_SECRET",
        help="The secret that signs participant tokens (a development one is generated if unset).",
    ),
]
Room = Annotated[
    str | None, typer.Option(envvar="ROOMWIRE_ROOM", help="Room (defaults to the token's).")
]
Name = Annotated[str, typer.Option(help="Participant name when minting a token.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON (one object per line).")]
IdempotencyKey = Annotated[
    str | None,
    typer.Option(
        help="1 to 64 characters naming this send: repeated within the server's"
        " idempotency window, it is acknowledged again but not delivered again.",
    ),
]
Type = Annotated[str, typer.Option("--type", help="Message type, e.g. chat.")]
Data = Annotated[str, typer.Option("--data", help="The message: a JSON object.")]
Attachment = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, readable=True, help="File sent as attachment."),
]


def fail(code: int, message: str) -> NoReturn:
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def credentials(
    ctx: typer.Context,
    url: str,
    token: str | None,
    secret: str | None,
    *,
    room: str | None,
    name: str,
    hidden: bool = False,
) -> str:
    """Check the URL, then return the token to connect with: --token as given, or one
    minted from --secret (``hidden`` for one-shot commands, so listeners see no churn). A
    flag beats an environment variable, so ``--secret`` on the command line wins over
    ``ROOMWIRE_TOKEN``."""
    try:
        rw.parse_url(url)
    except ValueError as exc:
        fail(3, str(exc))
    if token and not (secret and _from_flag(ctx, "secret") and not _from_flag(ctx, "token")):
        return token
    if not secret:
        fail(2, "no credentials: pass --token or --secret (or ROOMWIRE_TOKEN / ROOMWIRE_SECRET)")
    if not room:
        fail(2, "--room is needed to mint a token from --secret")
    return ParticipantToken(room=room, name=name, role="service", hidden=hidden).to_jwt(secret)


def client_tls(ca: Path | None) -> ssl.SSLContext | None:
    try:
        return _tls_files.client_context(ca)
    except ValueError as exc:
        fail(2, str(exc))


def _from_flag(ctx: typer.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "COMMANDLINE"


def parse_data(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        fail(2, f"--data is not valid JSON: {exc}")
    if not isinstance(value, dict):
        fail(2, '--data must be a JSON object, e.g. \'{"text": "hi"}\'')
    return value


def binding() -> Any:
    """The runtime's binding (``roomwire_asyncio`` or ``roomwire_trio``): its ``connect`` and
    ``serve`` carry that runtime's transports."""
    if _runtime == "trio":
        import roomwire_trio  # noqa: PLC0415 - only the trio CLI needs it

        return roomwire_trio
    import roomwire_asyncio  # noqa: PLC0415 - this package; imported late to avoid a cycle

    return roomwire_asyncio


def run_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main`` on the runtime ``main()`` was given (asyncio: uvloop when installed)."""
    if _runtime == "trio":
        anyio.run(main, backend="trio")
    else:
        run(main())


def run_command(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` with errors turned into one line and an exit code."""
    try:
        run_loop(lambda: _with_signals(main))
    except rw.RoomError as exc:
        if exc.code in _TOKEN_CODES:
            fail(4, f"token refused ({exc.code.name}): {exc.reason}")
        code = _EXIT_FOR_ERROR.get(type(exc), 3)
        fail(code, f"{exc.code.name} ({int(exc.code)}): {exc.reason}")
    except rw.RequestError as exc:
        fail(10, f"the participant called answered {exc.code}: {exc.reason}")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _with_signals(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` until it returns or SIGINT / SIGTERM arrives (then exit 130).

    ``main``'s own error is re-raised outside the task group, so it is not wrapped in an
    ExceptionGroup and ``run_command`` can name it.
    """
    interrupted = False
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    interrupted = True
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        try:
            await main()
        except Exception as exc:
            failure = exc
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if interrupted:
        raise KeyboardInterrupt


# --- commands -------------------------------------------------------------------------------


def _load_config(ctx: typer.Context, path: Path | None) -> Path | None:
    """``serve --config``: the file's settings become the defaults of the other options."""
    if path is not None:
        try:
            settings = _serve_config.read(path, _serve_config.setting_names(ctx))
        except _serve_config.ConfigError as exc:
            fail(2, str(exc))
        ctx.default_map = {**(ctx.default_map or {}), **settings}
    return path


@app.command()
def serve(  # noqa: PLR0917 - Typer maps parameters to options
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(envvar="ROOMWIRE_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="ROOMWIRE_PORT", help="Port to listen on (0 picks a free one).")
    ] = DEFAULT_PORT,
    secret: ServerSecret = None,
    heartbeat: Annotated[
        float, typer.Option(envvar="ROOMWIRE_HEARTBEAT", help="Seconds between pings.")
    ] = 25.0,
    redis: Annotated[
        str | None,
        typer.Option(
            envvar="ROOMWIRE_REDIS",
            help="Redis URL (redis://host:6379/0): run as one node of a cluster (asyncio only).",
        ),
    ] = None,
    node_id: Annotated[
        str | None,
        typer.Option(
            envvar="ROOMWIRE_NODE_ID", help="This node's id with --redis (random by default)."
        ),
    ] = None,
    backplane_ttl: Annotated[
        float,
        typer.Option(
            envvar="ROOMWIRE_BACKPLANE_TTL",
            help="With --redis: seconds before a silent node's participants go.",
        ),
    ] = 15.0,
    probe_interval: Annotated[
        float,
        typer.Option(
            envvar="ROOMWIRE_PROBE_INTERVAL",
            help="With --redis: seconds between pub/sub liveness probes.",
        ),
    ] = 1.0,
    backplane_key: Annotated[
        str | None,
        typer.Option(
            envvar="ROOMWIRE_BACKPLANE_KEY",
            help="With --redis: the cluster key (32+ bytes, the same on every node) that signs"
            " every backplane record; unsigned records are dropped.",
        ),
    ] = None,
    allow_weak_secret: Annotated[
        bool,
        typer.Option(
            "--allow-weak-secret",
            envvar="ROOMWIRE_ALLOW_WEAK_SECRET",
            help="Development only: accept a --secret or --backplane-key under 32 bytes.",
        ),
    ] = False,
    rate_limit: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            envvar="ROOMWIRE_RATE_LIMIT",
            help="Requests per second each connection may make.",
        ),
    ] = None,
    rate_burst: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="ROOMWIRE_RATE_BURST",
            help="Requests a connection may make at once (with --rate-limit).",
        ),
    ] = 10,
    idempotency_window: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="ROOMWIRE_IDEMPOTENCY_WINDOW",
            help="Seconds a send's idempotency key is remembered: a send re-sent within them"
            " (after a reconnect) is acknowledged again, not delivered again.",
        ),
    ] = 120,
    max_idempotency_keys: Annotated[
        int,
        typer.Option(
            min=1,
            envvar="ROOMWIRE_MAX_IDEMPOTENCY_KEYS",
            help="Most idempotency keys remembered per sender (room and token name).",
        ),
    ] = 1000,
    max_connections: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar="ROOMWIRE_MAX_CONNECTIONS",
            help="Most connections open at once (keep it under `ulimit -n`); more are closed"
            " at once with 3005 TOO_MANY_CONNECTIONS.",
        ),
    ] = None,
    max_connections_per_address: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar="ROOMWIRE_MAX_CONNECTIONS_PER_ADDRESS",
            help="Most connections open at once from one client address.",
        ),
    ] = None,
    resume_window: Annotated[
        float,
        typer.Option(
            min=0,
            envvar="ROOMWIRE_RESUME_WINDOW",
            help="Seconds a client whose connection was lost may take its participant back"
            " (same id, what it missed replayed); 0: removed at once.",
        ),
    ] = 30.0,
    metrics: Annotated[
        str | None,
        typer.Option(
            envvar="ROOMWIRE_METRICS",
            help="Serve Prometheus /metrics and /healthz at this URL, e.g. http://127.0.0.1:9464"
            " (needs roomwire-asyncio[metrics]).",
        ),
    ] = None,
    listen: Annotated[
        list[str] | None,
        typer.Option(
            envvar="ROOMWIRE_LISTEN",
            help="Listen on this URL instead of --host/--port (repeatable): tcp://host:port,"
            " tls://host:port, ws://host:port/path, wss://host:port/path.",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            envvar="ROOMWIRE_TLS_CERT",
            dir_okay=False,
            help="Certificate chain (PEM) for tls:// and wss:// listeners.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            envvar="ROOMWIRE_TLS_KEY",
            dir_okay=False,
            help="Private key (PEM) of --tls-cert, if not in that file.",
        ),
    ] = None,
    allowed_origin: Annotated[
        list[str] | None,
        typer.Option(
            envvar="ROOMWIRE_ALLOWED_ORIGIN",
            help="Origin a browser page may connect from over WebSocket (repeatable; none:"
            " any origin), e.g. https://app.example.com. Others get HTTP 403.",
        ),
    ] = None,
    history: Annotated[
        str | None,
        typer.Option(
            envvar="ROOMWIRE_HISTORY",
            help="Where room history lives: memory:// (the default), sqlite:///relative.db or"
            " sqlite:////absolute/path.db (survives a restart), redis://host:6379/0 (asyncio;"
            " the default with --redis).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar="ROOMWIRE_CONFIG",
            is_eager=True,  # read before the other options, so it can supply their defaults
            callback=_load_config,
            dir_okay=False,
            help="TOML file of serve settings (keys: the option names, e.g. rate_burst = 20).",
        ),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option(
            "--print-config", help="Print the resulting settings (secret redacted) and exit."
        ),
    ] = False,
) -> None:
    """Run a room server until Ctrl-C or SIGTERM (a signal is the normal stop: exit 0).

    Settings come from flags, then ROOMWIRE_* variables (ROOMWIRE_PORT, ...), then --config.
    """
    if print_config:
        print(_serve_config.describe(ctx), end="")
        return
    if redis is not None and _runtime != "asyncio":
        fail(2, "--redis needs asyncio (redis-py is asyncio-only): use `roomwire serve`")
    if history is not None and history.startswith("redis") and _runtime != "asyncio":
        fail(2, "--history redis://... needs asyncio (redis-py is asyncio-only)")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    generated = secret is None
    key = secret or secrets.token_urlsafe(32)
    try:
        tls = _tls_files.server_context(tls_cert, tls_key)
        for url in listen or ():
            rw.parse_url(url)
            if url.startswith(("tls:", "wss:")) and tls is None:
                raise ValueError(f"--listen {url} needs --tls-cert")
    except ValueError as exc:
        fail(2, str(exc))
    where = " ".join(listen) if listen else f"{host}:{port}"

    async def main() -> None:
        # A signal ends the block normally rather than cancelling it, so the server can tell
        # every client GOING_AWAY; armed before the server starts so none is missed.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            cluster: dict[str, Any] = {}
            if redis is not None:
                cluster = {
                    "redis": redis,
                    "node_id": node_id,
                    "backplane_ttl": backplane_ttl,
                    "backplane_heartbeat": backplane_ttl / 3,
                    "probe_interval": probe_interval,
                    "backplane_key": backplane_key,
                }
            async with binding().serve(
                host=host,
                port=port,
                secret=key,
                heartbeat_interval=heartbeat,
                rate_limit=rate_limit,
                rate_burst=rate_burst,
                idempotency_window=idempotency_window,
                max_idempotency_keys=max_idempotency_keys,
                max_connections=max_connections,
                max_connections_per_address=max_connections_per_address,
                resume_window=resume_window,
                metrics=metrics,
                allow_weak_secret=allow_weak_secret,
                listen=listen or None,
                ssl=tls,
                allowed_origins=allowed_origin,
                history=history,
                **cluster,
            ) as srv:
                if generated:
                    _print_next_steps(srv.url, key)
                if srv.metrics_url is not None:
                    print(f"metrics on {srv.metrics_url}/metrics and /healthz", flush=True)
                for url in srv.urls:
                    print(f"listening on {url}", flush=True)
                async for _ in signals:
                    break

    try:
        run_loop(main)
    except ImportError as exc:  # --metrics without prometheus-client
        fail(2, str(exc))
    except rw.HistoryStoreError as exc:  # a --history URL or file that cannot be used
        fail(2, str(exc))
    except ValueError as exc:  # a --metrics URL that is not http://host:port, a weak secret
        fail(2, str(exc).replace("allow_weak_secret=True", "--allow-weak-secret"))
    except OSError as exc:  # the port is taken, the host is not an address of this machine
        where = exc.filename or where  # the metrics endpoint names its URL
        fail(3, f"cannot listen on {where}: {exc.strerror or exc}")
    except KeyboardInterrupt:  # Ctrl-C before the handlers above were installed
        raise typer.Exit(130) from None
    err.print("stopped", markup=False)


def _print_next_steps(url: str, key: str) -> None:
    """For a generated secret: the secret, an example token and the commands to try next."""
    example = ParticipantToken(room="demo", name="alice").to_jwt(key)
    err.print(f"development secret (generated): {key}", markup=False)
    err.print(f"example token for alice in room demo:\n{example}", markup=False)
    err.print("next, in another terminal:", markup=False)
    err.print(f"  export ROOMWIRE_URL={url} ROOMWIRE_SECRET={key}", markup=False)
    err.print("  roomwire messaging listen --room demo", markup=False)
    err.print(
        '  roomwire messaging broadcast --room demo --type chat --data \'{"text": "hi"}\'',
        markup=False,
    )


DEFAULT_TOKEN_TTL = 3600.0
"""Seconds a ``roomwire token`` is valid for without ``--ttl``: a leaked one does not last."""


@app.command()
def token(  # noqa: PLR0917 - Typer maps parameters to options
    room: Annotated[str, typer.Option(envvar="ROOMWIRE_ROOM", help="The room it admits to.")],
    name: Annotated[str, typer.Option(help="The participant's name.")],
    secret: Secret = None,
    role: Annotated[str, typer.Option(help="Free-form role.")] = "user",
    ttl: Annotated[
        float, typer.Option(help="Seconds until it expires (default: one hour).")
    ] = DEFAULT_TOKEN_TTL,
    no_expiry: Annotated[
        bool, typer.Option("--no-expiry", help="Never expires (overrides --ttl): avoid.")
    ] = False,
    no_send: Annotated[bool, typer.Option("--no-send", help="Refuse direct messages.")] = False,
    no_broadcast: Annotated[
        bool, typer.Option("--no-broadcast", help="Refuse broadcasts.")
    ] = False,
    no_list: Annotated[bool, typer.Option("--no-list", help="Refuse presence.")] = False,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Refuse reading history.")
    ] = False,
    hidden: Annotated[
        bool,
        typer.Option("--hidden", help="Send without entering presence (a one-shot sender)."),
    ] = False,
    as_json: JsonOut = False,
    intercept: Annotated[
        bool,
        typer.Option("--intercept", help="May attach as the room's service (PROTOCOL §23)."),
    ] = False,
) -> None:
    """Print a participant token signed with the server's secret."""
    if not secret:
        fail(2, "no secret: pass --secret or set ROOMWIRE_SECRET")
    if ttl <= 0:
        fail(2, "--ttl must be a positive number of seconds")
    try:
        grant = ParticipantToken(
            room=room,
            name=name,
            role=role,
            can_send=not no_send,
            can_broadcast=not no_broadcast,
            can_list=not no_list,
            can_history=not no_history,
            hidden=hidden,
            intercept=intercept,
            expires_at=None if no_expiry else time.time() + ttl,
        )
    except TokenError as exc:
        fail(2, exc.reason)
    jwt = grant.to_jwt(secret)
    if as_json:
        print(
            json.dumps(
                {
                    "token": jwt,
                    "room": room,
                    "name": name,
                    "role": role,
                    "expires_at": grant.expires_at,
                }
            )
        )
    else:
        print(jwt)


@app.command("demo")
def run_demo(
    service: Annotated[
        bool,
        typer.Option(
            "--service",
            help="Run Moobius's channel-service tutorial (examples/moobius_service.py).",
        ),
    ] = False,
) -> None:
    """Start a server on a free port and run Alice and Bob's exchange, then exit."""
    if service:
        run_command(lambda: demo_service.main(binding()))
    else:
        run_command(lambda: demo.main(binding()))


def _participant_json(participant: RemoteParticipant) -> dict[str, Any]:
    return {
        "id": participant.id,
        "name": participant.name,
        "role": participant.role,
        "attributes": participant.attributes,
    }


@messaging_app.command("list")
def messaging_list(  # noqa: PLR0917 - Typer maps parameters to options
    ctx: typer.Context,
    url: Url = DEFAULT_URL,
    ca: Ca = None,
    room: Room = None,
    token: Token = None,
    secret: Secret = None,
    name: Name = "roomwire-cli",
    as_json: JsonOut = False,
) -> None:
    """Show the participants with messaging enabled."""
    jwt = credentials(ctx, url, token, secret, room=room, name=name, hidden=True)
    context = client_tls(ca)

    async def main() -> None:
        async with binding().connect(
            url, token=jwt, room=room, reconnect=False, ssl=context
        ) as client:
            await client.messaging.enable()
            people = client.messaging.remote_participants
        if as_json:
            print(json.dumps([_participant_json(p) for p in people]))
            return
        table = Table(title=f"room {client.room}: {len(people)} participant(s)")
        for column in ("id", "name", "role", "attributes"):
            table.add_column(column)
        for p in people:
            table.add_row(p.id, p.name, p.role, json.dumps(p.attributes))
        out.print(table)

    run_command(main)


def _by_name(client: rw.RoomClient, name: str) -> RemoteParticipant:
    participant = client.messaging.get_participant_by_name(name)
    if participant is None and any(p.name == name for p in client.messaging.remote_participants):
        raise rw.NotFoundError(
            f"several participants are named {name!r}: use --to-participant-id", Code.NOT_FOUND
        )
    if participant is None:
        raise rw.NotFoundError(
            f"no participant named {name!r} has messaging enabled", Code.NOT_FOUND
        )
    return participant


def _read_attachment(client: rw.RoomClient, path: Path | None) -> bytes | None:
    """The file's bytes, once its size (from stat, before reading it) fits the server's."""
    if path is None:
        return None
    most = client.limits.max_send_size if client.limits is not None else 0
    size = path.stat().st_size
    if size > most:
        raise rw.TooLargeError(
            f"{path} has {size} bytes, over the server's {most}-byte limit", Code.TOO_LARGE
        )
    return path.read_bytes()


@messaging_app.command("send")
def messaging_send(  # noqa: PLR0917 - Typer maps parameters to options
    ctx: typer.Context,
    type_: Type,
    data: Data,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="A recipient's name (repeatable).")
    ] = None,
    to_participant_id: Annotated[
        list[str] | None, typer.Option(help="A recipient's participant id (repeatable).")
    ] = None,
    attachment: Attachment = None,
    idempotency_key: IdempotencyKey = None,
    url: Url = DEFAULT_URL,
    ca: Ca = None,
    room: Room = None,
    token: Token = None,
    secret: Secret = None,
    name: Name = "roomwire-cli",
    as_json: JsonOut = False,
) -> None:
    """Send a message to one or more participants (repeat --to, or --to-participant-id);
    exit 0 only once the server acknowledged it, and print how many it was queued for."""
    names, ids = to or [], to_participant_id or []
    if bool(names) == bool(ids):
        fail(2, "pass exactly one of --to NAME or --to-participant-id ID (either may repeat)")
    message = parse_data(data)
    jwt = credentials(ctx, url, token, secret, room=room, name=name, hidden=True)
    context = client_tls(ca)

    async def main() -> None:
        async with binding().connect(
            url, token=jwt, room=room, reconnect=False, ssl=context
        ) as client:
            await client.messaging.enable(presence=bool(names))  # names are looked up there
            recipients = [_by_name(client, n) for n in names] or ids
            receipt = await client.messaging.send_message(
                to=recipients[0] if len(recipients) == 1 else recipients,
                type=type_,
                message=message,
                attachment=_read_attachment(client, attachment),
                receipt=True,
                idempotency_key=idempotency_key,
            )
        _print_sent(receipt, as_json)

    run_command(main)


@messaging_app.command("broadcast")
def messaging_broadcast(  # noqa: PLR0917 - Typer maps parameters to options
    ctx: typer.Context,
    type_: Type,
    data: Data,
    attachment: Attachment = None,
    idempotency_key: IdempotencyKey = None,
    url: Url = DEFAULT_URL,
    ca: Ca = None,
    room: Room = None,
    token: Token = None,
    secret: Secret = None,
    name: Name = "roomwire-cli",
    as_json: JsonOut = False,
) -> None:
    """Send a message to everyone in the room; exit 0 once the server acknowledged it, and
    print how many it was queued for."""
    message = parse_data(data)
    jwt = credentials(ctx, url, token, secret, room=room, name=name, hidden=True)
    context = client_tls(ca)

    async def main() -> None:
        async with binding().connect(
            url, token=jwt, room=room, reconnect=False, ssl=context
        ) as client:
            await client.messaging.enable(presence=False)
            receipt = await client.messaging.broadcast_message(
                type=type_,
                message=message,
                attachment=_read_attachment(client, attachment),
                receipt=True,
                idempotency_key=idempotency_key,
            )
        _print_sent(receipt, as_json)

    run_command(main)


def _print_sent(receipt: rw.SendReceipt, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "id": receipt.message_id,
                    "recipients": receipt.recipients,
                    "duplicate": receipt.duplicate,
                }
            )
        )
        return
    if receipt.recipients is None:  # the room's service decides (docs/PROTOCOL.md §23)
        queued = "handed to the room's service"
    else:
        queued = f"queued for {receipt.recipients} recipient(s)"
    again = " (a duplicate: not delivered again)" if receipt.duplicate else ""
    print(f"sent, message id {receipt.message_id}, {queued}{again}")


OneName = Annotated[str | None, typer.Option("--to", help="The participant's name.")]
OneId = Annotated[str | None, typer.Option(help="The participant's id.")]


def _one_participant(to: str | None, to_participant_id: str | None) -> None:
    if (to is None) == (to_participant_id is None):
        fail(2, "pass exactly one of --to NAME or --to-participant-id ID")


def _participant(
    client: rw.RoomClient, to: str | None, to_participant_id: str | None
) -> RemoteParticipant | str:
    """The one participant a command is for: by name (from presence) or by id."""
    return _by_name(client, to) if to is not None else str(to_participant_id)


@messaging_app.command("request")
def messaging_request(  # noqa: PLR0917 - Typer maps parameters to options
    ctx: typer.Context,
    type_: Type,
    data: Data,
    to: OneName = None,
    to_participant_id: OneId = None,
    timeout: Annotated[
        float, typer.Option(min=0.001, help="Seconds to wait for the answer.")
    ] = 10.0,
    attachment: Attachment = None,
    url: Url = DEFAULT_URL,
    ca: Ca = None,
    room: Room = None,
    token: Token = None,
    secret: Secret = None,
    name: Name = "roomwire-cli",
    as_json: JsonOut = False,
) -> None:
    """Call a participant's request handler and print its answer (exit 0); an error answer
    exits 10, no answer within --timeout exits 11."""
    _one_participant(to, to_participant_id)
    message = parse_data(data)
    jwt = credentials(ctx, url, token, secret, room=room, name=name, hidden=True)
    context = client_tls(ca)

    async def main() -> None:
        async with binding().connect(
            url, token=jwt, room=room, reconnect=False, ssl=context
        ) as client:
            await client.messaging.enable(presence=to is not None)
            callee = _participant(client, to, to_participant_id)
            reply = await client.messaging.request(
                to=callee,
                type=type_,
                message=message,
                attachment=_read_attachment(client, attachment),
                timeout=timeout,
            )
            names = {p.id: p.name for p in client.messaging.remote_participants}
        _show(_message_record(reply, None, names), as_json)

    run_command(main)


@messaging_app.command("stream")
def messaging_stream(  # noqa: PLR0917 - Typer maps parameters to options
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="File to send.")
    ],
    to: OneName = None,
    to_participant_id: OneId = None,
    chunk_size: Annotated[
        int, typer.Option(min=1, help="Bytes per chunk (at most the stream window).")
    ] = 64 * 1024,
    url: Url = DEFAULT_URL,
    ca: Ca = None,
    room: Room = None,
    token: Token = None,
    secret: Secret = None,
    name: Name = "roomwire-cli",
    as_json: JsonOut = False,
) -> None:
    """Send FILE as a stream (header: name and size) with a progress bar on stderr; exit 0
    once the reader has consumed every byte and the stream is closed."""
    _one_participant(to, to_participant_id)
    jwt = credentials(ctx, url, token, secret, room=room, name=name, hidden=True)
    context = client_tls(ca)
    size = file.stat().st_size

    async def main() -> None:
        async with binding().connect(
            url, token=jwt, room=room, reconnect=False, ssl=context
        ) as client:
            await client.messaging.enable(presence=to is not None)
            reader = _participant(client, to, to_participant_id)
            writer = await client.messaging.create_stream(
                to=reader, header={"name": file.name, "size": size}
            )
            piece = min(chunk_size, writer.window)
            with (
                file.open("rb") as source,
                Progress(console=err, transient=as_json) as progress,
            ):
                task = progress.add_task(f"{file.name} -> {to or to_participant_id}", total=size)
                while data := source.read(piece):
                    await writer.write(rw.MessageStreamChunk(data=data))
                    progress.advance(task, len(data))
                await writer.drain()
            await writer.close()
        record = {"event": "streamed", "id": writer.id, "file": str(file), "bytes": size}
        print(json.dumps(record) if as_json else f"streamed {size} bytes, stream id {writer.id}")

    run_command(main)


@messaging_app.command("history")
def messaging_history(  # noqa: PLR0917 - Typer maps parameters to options
    ctx: typer.Context,
    url: Url = DEFAULT_URL,
    room: Room = None,
    token: Token = None,
    secret: Secret = None,
    name: Name = "roomwire-cli",
    limit: Annotated[int, typer.Option(help="Most messages to print.")] = 100,
    since: Annotated[
        int | None, typer.Option(help="Only messages after this seq (exclusive).")
    ] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Newest first.")] = False,
    as_json: JsonOut = False,
) -> None:
    """Print the room's history this participant may read: broadcasts and the direct
    messages to or from its name, oldest first; messaging need not be enabled."""
    jwt = credentials(ctx, url, token, secret, room=room, name=name)

    async def main() -> None:
        async with binding().connect(url, token=jwt, room=room, reconnect=False) as client:
            found = await client.messaging.history(limit=limit, since=since, reverse=reverse)
        for message in found:
            _show(_message_record(message, None, {}), as_json)

    run_command(main)


@messaging_app.command("listen")
def messaging_listen(  # noqa: PLR0917 - Typer maps parameters to options
    ctx: typer.Context,
    url: Url = DEFAULT_URL,
    ca: Ca = None,
    room: Room = None,
    token: Token = None,
    secret: Secret = None,
    name: Name = "roomwire-cli",
    save_attachments: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Save attachments in this folder, not as base64."),
    ] = None,
    as_json: JsonOut = False,
    since: Annotated[
        int | None,
        typer.Option(
            min=0, help="First print the history after this seq (exclusive), then go live."
        ),
    ] = None,
    save_streams: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Accept streams and save each in this folder."),
    ] = None,
) -> None:
    """Print messages and presence changes as they happen, until interrupted (exit 130) or
    the connection is gone for good (exit 3, or 4 for a token refused on reconnecting).
    With --since, the history after that seq comes first, each message once."""
    jwt = credentials(ctx, url, token, secret, room=room, name=name)
    context = client_tls(ca)
    if save_attachments is not None:
        save_attachments.mkdir(parents=True, exist_ok=True)
    if save_streams is not None:
        save_streams.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        async with binding().connect(
            url, token=jwt, room=room, reconnect=True, ssl=context
        ) as client:
            saver = None if save_streams is None else partial(_save_stream, save_streams, as_json)
            await client.messaging.enable(on_stream_accept=saver)
            me = client.local_participant
            assert me is not None  # set by the handshake, before connect() yields
            # On stderr, so stdout stays data: scripts can wait for this line to know the
            # listener is in the room.
            err.print(f"listening in room {client.room} as {me.name} ({me.id})", markup=False)
            # Names by id, from the presence events shown so far: they come in order (a
            # sender joins before its message and leaves after it), so a message's sender
            # is known when it is printed.
            names = {me.id: me.name}
            for participant in client.messaging.remote_participants:
                names[participant.id] = participant.name
                _show({"event": "present", "participant": _participant_json(participant)}, as_json)
            # Enabled first, so nothing falls between the history and the live messages;
            # those in both are printed once (by seq).
            replayed = -1
            if since is not None:
                replayed = await _replay(client, since, save_attachments, names, as_json)
            lost: rw.Disconnected | None = None
            async for event in client.messaging.events():
                if isinstance(event, rw.Disconnected):
                    lost = event
                if isinstance(event, MessageReceived) and event.message.seq <= replayed:
                    continue
                record = _describe(event, save_attachments, names)
                if record is not None:
                    _show(record, as_json)
            # The events end only once the connection is gone for good (reconnecting failed):
            # exit non-zero with the last reason, e.g. an expired token or an unreachable server.
            if lost is None:
                raise rw.ConnectionClosedError("the connection ended", Code.CONNECTION_LOST)
            raise rw.ConnectionClosedError(lost.reason, lost.code)

    run_command(main)


async def _replay(
    client: rw.RoomClient, since: int, folder: Path | None, names: dict[str, str], as_json: bool
) -> int:
    """Print the history after seq ``since``, page by page; the last seq printed."""
    limits = client.limits
    assert limits is not None  # connected: the welcome said them
    page = limits.max_history_limit
    while True:
        found = await client.messaging.history(limit=page, since=since)
        for message in found:
            _show(_message_record(message, folder, names), as_json)
        if found:
            since = found[-1].seq
        if len(found) < page:
            return since


async def _save_stream(folder: Path, as_json: bool, reader: rw.MessageStreamReader) -> None:
    """Save one stream in ``folder`` as ``<stream id>-<name from its header>``; print a
    record once it ended (or failed: the part received stays)."""
    named = reader.header.get("name")
    tail = Path(named).name if isinstance(named, str) else "stream"
    path = folder / _safe_name(f"{reader.id}-{tail}")
    record: dict[str, Any] = {
        "event": "stream",
        "id": reader.id,
        "from": reader.from_participant_id,
        "header": reader.header,
        "file": str(path),
    }
    received = 0
    try:
        with path.open("wb") as sink:
            async for chunk in reader:
                sink.write(chunk.data)
                received += len(chunk.data)
    except rw.RoomError as exc:
        record.update(event="stream failed", code=exc.code.name, reason=exc.reason)
    record["bytes"] = received
    _show(record, as_json)


def _safe_name(name: str) -> str:
    """One plain file name: the stream id and header come from others."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "_"


def _describe(
    event: rw.MessagingEvent, folder: Path | None, names: dict[str, str]
) -> dict[str, Any] | None:
    if isinstance(event, MessageReceived):
        return _message_record(event.message, folder, names)
    if isinstance(event, ParticipantAdded | ParticipantUpdated | rw.Reconnected):
        names[event.participant.id] = event.participant.name
    if isinstance(event, ParticipantRemoved):
        names.pop(event.participant.id, None)
    if isinstance(event, ParticipantAdded | ParticipantRemoved | ParticipantUpdated):
        kind = _PRESENCE_EVENTS[type(event)]
        return {"event": kind, "participant": _participant_json(event.participant)}
    if isinstance(event, rw.Disconnected):
        return {
            "event": "disconnected",
            "code": event.code.name,
            "reason": event.reason,
            "reconnecting": event.reconnecting,
        }
    if isinstance(event, rw.Reconnected):
        return {
            "event": "reconnected",
            "participant": _participant_json(event.participant),
            "recovered": event.recovered,
            "missed": event.missed,
        }
    if isinstance(event, rw.EventsDropped):
        return {"event": "dropped", "count": event.count}
    return None


def _message_record(m: RoomMessage, folder: Path | None, names: dict[str, str]) -> dict[str, Any]:
    """A message as ``listen`` and ``history`` print it; an attachment is saved in
    ``folder`` when one is given, else inlined as base64."""
    record: dict[str, Any] = {
        "event": "message",
        "id": m.id,
        "seq": m.seq,
        "timestamp": m.timestamp,
        "from": m.from_participant_id,
        "from_name": names.get(m.from_participant_id),  # None: not in this one's presence
        "type": m.type,
        "message": m.message,
        "broadcast": m.broadcast,
    }
    if m.attachment is not None:
        if folder is None:
            record["attachment"] = base64.b64encode(m.attachment).decode()
        else:
            # The id comes from the server: keep it to one plain file name in the folder.
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in m.id)
            path = folder / f"{safe}.bin"
            path.write_bytes(m.attachment)
            record["attachment_file"] = str(path)
    return record


_PRESENCE_EVENTS = {
    ParticipantAdded: "joined",
    ParticipantRemoved: "left",
    ParticipantUpdated: "updated",
}


def _show(record: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(record) if as_json else _human(record), flush=True)


def _human(record: dict[str, Any]) -> str:
    """One line for a person: names first, ids in brackets, a disconnect's code and reason."""
    event = record["event"]
    if event == "message":
        extra = " +attachment" if "attachment" in record or "attachment_file" in record else ""
        sender = (
            record["from"]
            if record["from_name"] is None
            else (f"{record['from_name']} ({record['from']})")
        )
        return f"[{record['type']}] {sender}: {json.dumps(record['message'])}{extra}"
    if event in {"stream", "stream failed"}:
        why = f" ({record['code']}: {record['reason']})" if "code" in record else ""
        return f"* {event} {record['id']} from {record['from']}: {record['bytes']} bytes{why}"
    if event == "disconnected":
        then = "reconnecting" if record["reconnecting"] else "not reconnecting"
        return f"* disconnected: {record['code']} ({record['reason']}), {then}"
    if event == "reconnected":
        p = record["participant"]
        if record["recovered"]:  # PROTOCOL.md §22: what it missed follows, in order
            return f"* reconnected as {p['name']} ({p['id']}), {record['missed']} missed"
        return f"* reconnected as {p['name']} ({p['id']}), not recovered: messages may be lost"
    if "participant" in record:
        p = record["participant"]
        return f"* {p['name']} ({p['id']}) {event}"
    return f"* {record['count']} event(s) dropped: the queue was full"


def _warn_in_one_line(  # noqa: PLR0917 - the signature of warnings.showwarning
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    err.print(f"warning: {message}", markup=False)


def main(runtime: Runtime = "asyncio") -> None:
    """The console script's entry point; ``python -m roomwire_trio`` passes ``"trio"``."""
    global _runtime  # noqa: PLW0603 - one process runs one CLI invocation on one runtime
    _runtime = runtime
    warnings.showwarning = _warn_in_one_line  # e.g. PyJWT's short-key warning: no source dump
    app(prog_name="roomwire")
