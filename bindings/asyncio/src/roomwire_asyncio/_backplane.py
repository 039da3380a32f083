"""``serve(redis=...)``: the Redis backplane and history store, loaded only when asked for
(redis-py is an optional extra)."""

from __future__ import annotations

from roomwire_anyio import Backplane, HistoryStore, ServerPump


def redis_backplane(pump: ServerPump, url: str, probe_interval: float) -> Backplane:
    try:
        from ._redis import RedisBackplane  # noqa: PLC0415 - redis-py is an optional extra
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            "serve(redis=...) needs redis-py: pip install 'roomwire-asyncio[redis]'"
        ) from exc
    return RedisBackplane(pump, url, probe_interval=probe_interval)


def redis_history(url: str) -> HistoryStore:
    try:
        from ._redis_history import RedisStore  # noqa: PLC0415 - redis-py is an optional extra
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            "history in Redis needs redis-py: pip install 'roomwire-asyncio[redis]'"
        ) from exc
    return RedisStore(url)
