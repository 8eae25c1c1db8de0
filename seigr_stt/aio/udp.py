"""The UDP transport: one non-blocking socket serves every session of a node (§12.1).

Reading drains the socket in batches on each readiness callback (plain asyncio reads one datagram
per loop iteration, which starves a receiver behind a fast sender). Writing goes straight to
``sendto``; when the kernel buffer is full, datagrams wait in a bounded queue flushed by a writer
callback, and :meth:`UDPTransport.wait_writable` lets senders pause (backpressure).

Batching on Linux: :meth:`UDPTransport.send_many` hands a run of equal-sized datagrams to one
address to the kernel in one ``sendmsg`` with ``UDP_SEGMENT`` (generic segmentation offload: one
system call and one trip through the stack for up to ``GSO_MAX_SEGMENTS`` datagrams), and the
socket asks for ``UDP_GRO``: the kernel may then hand over several datagrams of one sender at
once, which the reader splits again at the segment size it reports. Datagrams on the wire are
the same either way. Where the kernel lacks either option, or a send with it fails (a device
without checksum offload answers EIO), the transport falls back to one ``sendto`` per datagram
and plain reads, and says so in :attr:`UDPTransport.gso` / :attr:`UDPTransport.gro`. The
environment variable ``SEIGR_STT_NO_UDP_OFFLOAD`` turns both off for the whole process.

Event loops without ``loop.add_reader`` (the Proactor loop, Windows' default) raise
NotImplementedError there; :meth:`UDPTransport.bind` then falls back to the standard
``loop.create_datagram_endpoint`` on the same socket: one datagram per callback, the batch end
at the end of the loop turn, and the transport's own buffer with pause/resume for backpressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import os
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["UDPTransport"]

Address = tuple[str, int]

READ_BATCH = 256
RECV_BUFFER_BYTES = 4 * 1024 * 1024
SEND_BUFFER_BYTES = 4 * 1024 * 1024
SEND_QUEUE_HIGH_WATER = 4096  # datagrams queued in user space before senders pause
SEND_QUEUE_MAX = 65536  # beyond this, datagrams are dropped and counted
MAX_DATAGRAM = 65535
#: With the datagram-endpoint fallback: the transport's buffer above which senders pause.
ENDPOINT_HIGH_WATER_BYTES = 4 * 1024 * 1024
#: With the datagram-endpoint fallback: beyond this buffered, datagrams are dropped and counted.
ENDPOINT_MAX_BUFFER_BYTES = 64 * 1024 * 1024
#: Set (to anything) in the environment, this turns segmentation and receive offload off for
#: every UDP socket the process binds: for comparing, or for a path that mishandles them.
NO_OFFLOAD_ENV = "SEIGR_STT_NO_UDP_OFFLOAD"
#: The most datagrams in one segmentation-offload send (Linux's UDP_MAX_SEGMENTS is 64 or more).
GSO_MAX_SEGMENTS = 64
#: The most payload bytes in one segmentation-offload send (one IP packet before segmentation).
GSO_MAX_BYTES = 65000


def _socket_option(name: str, linux_value: int) -> int | None:
    """The ``socket`` module's constant; Linux's number when a Linux build lacks it; else None.

    The numbers are Linux's alone (``10`` is ``IP_MULTICAST_TTL`` on macOS and Windows), so
    elsewhere a missing option is skipped rather than set under a wrong number."""
    value = getattr(socket, name, None)
    if value is None and sys.platform.startswith("linux"):
        return linux_value
    return None if value is None else int(value)


_IP_MTU_DISCOVER = _socket_option("IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_DO = _socket_option("IP_PMTUDISC_DO", 2)
_IPV6_MTU_DISCOVER = _socket_option("IPV6_MTU_DISCOVER", 23)
_IPV6_DONTFRAG = _socket_option("IPV6_DONTFRAG", 62)
_SOL_UDP = _socket_option("SOL_UDP", 17)
_UDP_SEGMENT = _socket_option("UDP_SEGMENT", 103)
_UDP_GRO = _socket_option("UDP_GRO", 104)
#: Room for the UDP_GRO control message (an int: the segment size) in recvmsg.
_GRO_CMSG_SPACE = socket.CMSG_SPACE(4) if hasattr(socket, "CMSG_SPACE") else 0
#: Errors by which a kernel refuses segmentation offload for a send (not the datagrams' fault).
_GSO_REFUSED = frozenset({errno.EIO, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOPROTOOPT})


def _offloads(sock: socket.socket) -> tuple[bool, bool]:
    """Whether the kernel offers UDP segmentation offload on ``sock``, and whether it accepted
    receive offload (``UDP_GRO``, then set). Errors mean no."""
    if _SOL_UDP is None or not hasattr(sock, "sendmsg") or not hasattr(sock, "recvmsg"):
        return False, False
    gso = gro = False
    if _UDP_SEGMENT is not None:
        with contextlib.suppress(OSError):
            sock.getsockopt(_SOL_UDP, _UDP_SEGMENT)
            gso = True
    if _UDP_GRO is not None and _GRO_CMSG_SPACE:
        with contextlib.suppress(OSError):
            sock.setsockopt(_SOL_UDP, _UDP_GRO, 1)
            gro = True
    return gso, gro


def _dont_fragment(sock: socket.socket, family: int) -> None:
    """Set Don't Fragment where the platform names the options (errors are ignored: datagrams
    then keep the platform's default)."""
    with contextlib.suppress(OSError):
        if family == socket.AF_INET and _IP_MTU_DISCOVER is not None:
            if _IP_PMTUDISC_DO is not None:
                sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
        elif family == socket.AF_INET6:
            if _IPV6_MTU_DISCOVER is not None and _IP_PMTUDISC_DO is not None:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _IP_PMTUDISC_DO)
            if _IPV6_DONTFRAG is not None:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_DONTFRAG, 1)


class _EndpointProtocol(asyncio.DatagramProtocol):
    """The datagram-endpoint fallback's protocol: hands everything to its UDPTransport."""

    def __init__(self, owner: UDPTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._owner._endpoint_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) surface here: not data, as in the reader path.
        pass

    def pause_writing(self) -> None:
        self._owner._writable.clear()

    def resume_writing(self) -> None:
        self._owner._writable.set()


@functools.lru_cache(maxsize=256)
def ip_version(host: str) -> int | None:
    """4 or 6 for an IP literal, None for anything else (a name). Cached: every connect asks,
    and parsing an address costs about 5 µs."""
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


class UDPTransport:
    """A bound UDP socket driven by the event loop's reader/writer callbacks, or by a datagram
    endpoint on loops without them (see the module docstring).

    ``on_datagram(data, addr)`` is called for every datagram received, from the loop; it must
    not raise. Call :meth:`close` to release the socket. Constructed directly, the socket is
    read through ``loop.add_reader`` (NotImplementedError on a Proactor loop); :meth:`bind`
    chooses the fallback by itself.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        on_datagram: Callable[[bytes, Address], None],
        on_batch_end: Callable[[], None] | None = None,
        *,
        _register: bool = True,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._on_datagram = on_datagram
        self._on_batch_end = on_batch_end
        self._queue: deque[tuple[bytes, Address]] = deque()
        self._writing = False
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = False
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.send_errors = 0
        self.send_dropped = 0
        name = sock.getsockname()
        self._address = (str(name[0]), int(name[1]))
        #: The fallback's transport, when the loop has no add_reader; None otherwise.
        self._endpoint: asyncio.DatagramTransport | None = None
        self._batch_pending = False
        self._endpoint_buffered: Callable[[], int] = lambda: 0
        #: Sends of several datagrams in one ``sendmsg`` (segmentation offload); see the module
        #: docstring. Both False until :meth:`bind` finds the kernel offers them.
        self.gso = False
        #: Reads that may carry several datagrams of one sender (receive offload).
        self.gro = False
        self.gso_sends = 0  # sendmsg calls that carried more than one datagram
        self.gro_reads = 0  # reads that the kernel had coalesced (more than one datagram)
        if _register:
            loop.add_reader(sock.fileno(), self._read_ready)

    async def _start(self) -> None:
        """Read through ``add_reader``, or through a datagram endpoint where the loop has none."""
        try:
            self._loop.add_reader(self._sock.fileno(), self._read_ready)
        except NotImplementedError:
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _EndpointProtocol(self), sock=self._sock
            )
            # Both the selector and the Proactor datagram transports have flow control;
            # typeshed's DatagramTransport does not declare it.
            limits = getattr(transport, "set_write_buffer_limits", None)
            if limits is not None:
                limits(high=ENDPOINT_HIGH_WATER_BYTES)
            self._endpoint_buffered = getattr(transport, "get_write_buffer_size", lambda: 0)
            self._endpoint = transport

    @property
    def uses_endpoint(self) -> bool:
        """True when the socket runs through the datagram-endpoint fallback (a loop without
        ``add_reader``, such as the Proactor loop)."""
        return self._endpoint is not None

    @classmethod
    async def bind(
        cls,
        host: str,
        port: int,
        on_datagram: Callable[[bytes, Address], None],
        on_batch_end: Callable[[], None] | None = None,
        *,
        offload: bool = True,
    ) -> UDPTransport:
        """Bind ``host:port`` (port 0 picks a free one) and start reading.

        ``on_datagram`` runs for each datagram of a batch read in one wake-up, then
        ``on_batch_end`` once (the adapter's drain point goes there). ``offload=False`` keeps
        the portable path (one system call per datagram) even where the kernel offers
        segmentation and receive offload.
        """
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for option, size in (
                (socket.SO_RCVBUF, RECV_BUFFER_BYTES),
                (socket.SO_SNDBUF, SEND_BUFFER_BYTES),
            ):
                # Platform limits may refuse the size; the default buffer still works.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, size)
            # Don't Fragment: a record larger than the path MTU is refused or dropped instead
            # of fragmented, which is what path-MTU probing relies on (§12.1).
            _dont_fragment(sock, family)
            sock.bind(sockaddr)
            transport = cls(loop, sock, on_datagram, on_batch_end, _register=False)
            await transport._start()
            if offload and transport._endpoint is None and not os.environ.get(NO_OFFLOAD_ENV):
                transport.gso, transport.gro = _offloads(sock)
        except BaseException:
            sock.close()
            raise
        return transport

    @property
    def address(self) -> Address:
        """The ``(host, port)`` actually bound."""
        return self._address

    def _read_ready(self) -> None:
        if self.gro:
            self._read_coalesced()
            return
        received = 0
        try:
            for _ in range(READ_BATCH):
                try:
                    data, addr = self._sock.recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    # ICMP errors (port unreachable) surface here on some platforms: not data.
                    continue
                received += 1
                self._on_datagram(data, (str(addr[0]), int(addr[1])))
        finally:
            self._finish_read(received)

    def _read_coalesced(self) -> None:
        """:meth:`_read_ready` with receive offload: a read may hold several datagrams of one
        sender, each ``segment`` bytes but the last; they are handed over one by one."""
        received = 0
        sock = self._sock
        on_datagram = self._on_datagram
        try:
            for _ in range(READ_BATCH):
                try:
                    data, ancillary, _, addr = sock.recvmsg(MAX_DATAGRAM, _GRO_CMSG_SPACE)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    continue  # ICMP errors, as in the plain reader
                source = (str(addr[0]), int(addr[1]))
                segment = 0
                for level, kind, value in ancillary:
                    if level == _SOL_UDP and kind == _UDP_GRO and len(value) >= 4:
                        segment = struct.unpack("=i", value[:4])[0]
                if segment <= 0 or segment >= len(data):
                    received += 1
                    on_datagram(data, source)
                    continue
                self.gro_reads += 1
                view = memoryview(data)
                for start in range(0, len(data), segment):
                    received += 1
                    on_datagram(bytes(view[start : start + segment]), source)
                    if self.closed:
                        return
        finally:
            self._finish_read(received)

    def _finish_read(self, received: int) -> None:
        """After a readiness callback of either reader: count, and end the batch once."""
        self.datagrams_received += received
        if received and self._on_batch_end is not None and not self.closed:
            self._on_batch_end()

    def _endpoint_datagram(self, data: bytes, addr: Address) -> None:
        """The fallback: one datagram; the batch ends with the loop turn."""
        if self.closed:
            return
        self.datagrams_received += 1
        self._on_datagram(data, addr)
        if not self._batch_pending and self._on_batch_end is not None:
            self._batch_pending = True
            self._loop.call_soon(self._end_batch)

    def _end_batch(self) -> None:
        self._batch_pending = False
        if self._on_batch_end is not None and not self.closed:
            self._on_batch_end()

    def sendto(self, data: bytes, addr: Address) -> None:
        """Send one datagram now, or queue it if the kernel buffer is full."""
        if self.closed:
            self.send_dropped += 1
            return
        if self._endpoint is not None:
            if self._endpoint_buffered() >= ENDPOINT_MAX_BUFFER_BYTES:
                self.send_dropped += 1
                return
            try:
                self._endpoint.sendto(data, addr)
            except OSError:
                self.send_errors += 1
                return
            self.datagrams_sent += 1
            return
        if not self._queue:
            try:
                self._sock.sendto(data, addr)
                self.datagrams_sent += 1
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.send_errors += 1
                return
        if len(self._queue) >= SEND_QUEUE_MAX:
            self.send_dropped += 1
            return
        self._queue.append((data, addr))
        if len(self._queue) >= SEND_QUEUE_HIGH_WATER:
            self._writable.clear()
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._sock.fileno(), self._write_ready)

    def send_many(self, packets: list[bytes], addr: Address) -> None:
        """Send ``packets`` to ``addr`` in order: runs of equal-sized datagrams (the last of a run
        may be shorter) in one ``sendmsg`` each where segmentation offload is on, else as
        :meth:`sendto` one by one. Queues, counts and drops exactly as :meth:`sendto` does."""
        if not self.gso or self._queue or self.closed or len(packets) < 2:
            for packet in packets:
                self.sendto(packet, addr)
            return
        assert _SOL_UDP is not None  # gso is True only with both options named
        assert _UDP_SEGMENT is not None
        sock = self._sock
        count = len(packets)
        i = 0
        while i < count:
            size = len(packets[i])
            j = i + 1
            total = size
            limit = min(count, i + GSO_MAX_SEGMENTS)
            while j < limit and total + len(packets[j]) <= GSO_MAX_BYTES:
                length = len(packets[j])
                if length > size:
                    break
                total += length
                j += 1
                if length < size:
                    break  # a shorter datagram ends the run
            try:
                if j - i == 1:
                    sock.sendto(packets[i], addr)
                else:
                    segment = struct.pack("=H", size)
                    sock.sendmsg(packets[i:j], [(_SOL_UDP, _UDP_SEGMENT, segment)], 0, addr)
                    self.gso_sends += 1
            except (BlockingIOError, InterruptedError):
                for packet in packets[i:]:
                    self.sendto(packet, addr)  # the kernel buffer is full: the queue takes over
                return
            except OSError as exc:
                if j - i > 1 and exc.errno in _GSO_REFUSED:
                    self.gso = False  # this path cannot offload: one datagram per call from now
                    for packet in packets[i:]:
                        self.sendto(packet, addr)
                    return
                self.send_errors += j - i
                i = j
                continue
            self.datagrams_sent += j - i
            i = j

    def _write_ready(self) -> None:
        while self._queue:
            data, addr = self._queue[0]
            try:
                self._sock.sendto(data, addr)
                self.datagrams_sent += 1
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.send_errors += 1
            self._queue.popleft()
            if len(self._queue) < SEND_QUEUE_HIGH_WATER // 2:
                self._writable.set()
        self._loop.remove_writer(self._sock.fileno())
        self._writing = False
        self._writable.set()

    async def resolve(self, host: str, port: int) -> Address:
        """``(host, port)`` as an address of this socket's family: an IP literal as it is, a
        name through the resolver. Raises OSError (``socket.gaierror``) when it does not
        resolve."""
        if ip_version(host) is not None:
            return (host, port)
        family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
        infos = await self._loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
        sockaddr = infos[0][4]
        return (str(sockaddr[0]), int(sockaddr[1]))

    @property
    def is_running(self) -> bool:
        """True until :meth:`close`."""
        return not self.closed

    @property
    def queued(self) -> int:
        """Datagrams waiting in user space for the kernel buffer (with the datagram-endpoint
        fallback, which counts bytes: 1 while its buffer is above the high-water mark, else 0).
        """
        if self._endpoint is not None:
            return 0 if self._writable.is_set() else 1
        return len(self._queue)

    async def wait_writable(self) -> None:
        """Return once the send queue is below its high-water mark."""
        await self._writable.wait()

    def close(self) -> None:
        """Stop reading and writing and close the socket (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._endpoint is not None:
            self._endpoint.abort()  # closes the socket; queued datagrams are dropped
            self._writable.set()
            return
        self._loop.remove_reader(self._sock.fileno())
        if self._writing:
            self._loop.remove_writer(self._sock.fileno())
            self._writing = False
        self._queue.clear()
        self._writable.set()
        self._sock.close()
