"""TLS and WebSocket transports over real loopback sockets, on asyncio and trio."""
