"""Tools for testing code that uses seigr_stt: seeded lossy networks, reproducible from a seed.

Two simulators:

* :class:`Net` is an in-memory transport and a seeded lossy network (loss, reordering,
  duplication, delay, rate limit) driving sans-I/O :class:`seigr_stt.core.endpoint.Endpoint`
  objects with simulated time. Nothing reads a clock or opens a socket: thousands of simulated
  seconds run in a moment, and every run with the same seed is identical::

      net = Net(seed=7, loss=0.05, delay_s=(0.010, 0.030), duplicate=0.01)
      a, b = net.add_node("A"), net.add_node("B")
      sid = net.establish(a, b)
      a.session(sid).send_message(0, b"hello", net.now)
      net.flush()
      net.run(1.0)
      assert [e.data for e in b.events_of(MessageReceived)] == [b"hello"]

* :class:`UDPRelay` is a loopback UDP relay that sits between two real nodes and loses, delays,
  reorders, duplicates and rate-limits datagrams as an :class:`Impairment` says::

      async with UDPRelay(server.udp_address, Impairment(loss=0.1, seed=7)) as relay:
          session = await client.connect_udp(*relay.address)

  The relay binds 127.0.0.1 only and forwards only to the target it was given.

* NATs and firewalls (RFC 4787 terms): :class:`NAT` is a pure model (endpoint-independent,
  address-dependent or address-and-port-dependent mapping and filtering, mapping timeouts,
  port preservation or random ports, hairpinning) and :class:`Firewall` drops UDP. A NAT puts
  simulated nodes behind it (:meth:`Net.add_nat`, ``Net.add_node(..., behind=nat)``), and
  :class:`NATBox` puts real nodes behind one on loopback. See the guide docs/testing.md.
"""

from seigr_stt.testing.nat import (
    NAT,
    Behavior,
    Firewall,
    FirewallStats,
    NATConfig,
    NATMapping,
    NATStats,
    PortAllocation,
)
from seigr_stt.testing.natbox import NATBox
from seigr_stt.testing.relay import Impairment, RelayStats, UDPRelay
from seigr_stt.testing.sim import SHARED_SEED, START, Net, Node, Packet, make_seed, seeded_rng

# In the order of the reference page (docs/reference/testing.md sorts by it): the simulator
# from its simplest parts up, then the relay.
__all__ = [  # noqa: RUF022
    "START",
    "SHARED_SEED",
    "seeded_rng",
    "make_seed",
    "Packet",
    "Node",
    "Net",
    "Impairment",
    "RelayStats",
    "UDPRelay",
    "Behavior",
    "PortAllocation",
    "NATConfig",
    "NATMapping",
    "NATStats",
    "NAT",
    "FirewallStats",
    "Firewall",
    "NATBox",
]
