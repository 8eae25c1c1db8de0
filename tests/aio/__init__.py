"""Adapter and integration tests: real nodes over real loopback sockets (UDP and WebSocket)."""
