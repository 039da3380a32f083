"""The browser example, served on this machine: a roomwire server with a WebSocket listener,
this folder's page (with the TypeScript client's bundle as ``roomwire.js``) over HTTP, and a
link per participant that carries a development token in its fragment (never sent to a
server: the page reads it and puts it in its first frame).

Run (after ``npm ci && npm run build`` in bindings/typescript):

    python examples/browser/serve.py            # then open the printed links

Loopback only: the secret is a development one unless ``--secret`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import roomwire_asyncio

from roomwire import ParticipantToken

HERE = Path(__file__).resolve().parent
BUNDLE = HERE.parent.parent / "bindings" / "typescript" / "dist" / "index.js"


class PageHandler(SimpleHTTPRequestHandler):
    """This folder's files, and the client bundle as ``/roomwire.js``."""

    def translate_path(self, path: str) -> str:
        if path.split("?", 1)[0] == "/roomwire.js":
            return str(BUNDLE)
        return super().translate_path(path)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the links and the room server's log are what matter here


def page_links(page: str, ws_url: str, secret: str, room: str, names: list[str]) -> list[str]:
    return [
        f"{page}#url={quote(ws_url, safe='')}&token="
        + ParticipantToken(room=room, name=name).to_jwt(secret)
        for name in names
    ]


async def main(args: argparse.Namespace) -> None:
    handler = partial(PageHandler, directory=str(HERE))
    http = ThreadingHTTPServer(("127.0.0.1", args.http_port), handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        async with roomwire_asyncio.serve(
            listen=[f"ws://127.0.0.1:{args.ws_port}/"], secret=args.secret
        ) as server:
            page = f"http://127.0.0.1:{http.server_address[1]}/"
            print(f"websocket {server.url}", flush=True)
            for name, link in zip(
                args.name,
                page_links(page, server.url, args.secret, args.room, args.name),
                strict=True,
            ):
                print(f"page for {name}: {link}", flush=True)
            await anyio.sleep_forever()
    finally:
        http.shutdown()
        http.server_close()
        thread.join()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http-port", type=int, default=8000, help="the page's port (0: any)")
    parser.add_argument("--ws-port", type=int, default=7891, help="the WebSocket port (0: any)")
    parser.add_argument("--room", default="demo")
    parser.add_argument(
        "--name", action="append", help="a participant to print a link for (repeatable)"
    )
    parser.add_argument("--secret", default=secrets.token_urlsafe(32))
    args = parser.parse_args(argv)
    args.name = args.name or ["alice", "bob"]
    return args


if __name__ == "__main__":
    if not BUNDLE.exists():
        sys.exit(f"no {BUNDLE}: run `npm ci && npm run build` in bindings/typescript first")
    with contextlib.suppress(KeyboardInterrupt):
        roomwire_asyncio.run(main(parse(sys.argv[1:])))
