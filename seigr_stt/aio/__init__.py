"""Thin asyncio adapters over the sans-I/O core: UDP, WebSocket, the node and its sessions."""
