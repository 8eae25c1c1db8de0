"""The sans-I/O protocol core: bytes and ``now`` in; bytes, events and deadlines out.

Nothing in this package imports asyncio, socket, time, random or threading; randomness comes in
as an ``rng`` callable (``rng(n) -> bytes``) and time as ``now`` floats (seconds, any epoch).
"""
