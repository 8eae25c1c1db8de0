"""Node tickets (seigr_stt.ticket): the text form round-trips, and anything else is refused with
a TicketError that says why (a ticket is untrusted input)."""

from __future__ import annotations

import base64
import os

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seigr_stt import ConfigError, NodeTicket, TicketError
from seigr_stt.ticket import TICKET_MAX_CHARS, TICKET_MAX_ENTRIES, looks_like_ticket

NODE = bytes(range(32))


def encode(fields: object) -> str:
    """``fields`` in a ticket's text form, whatever they are."""
    return text_of(msgpack.packb(fields, use_bin_type=True))


def text_of(packed: bytes) -> str:
    """``packed`` as a ticket's text."""
    return "stt" + base64.b32encode(packed).decode().rstrip("=").lower()


def full() -> NodeTicket:
    return NodeTicket(
        NODE,
        (("127.0.0.1", 9000), ("2001:db8::1", 9000), ("node.example.org", 443)),
        ("ws://127.0.0.1:9001/stt", "wss://node.example.org/stt"),
        ("udp://relay.example.org:9400", "wss://relay.example.org/stt"),
    )


def test_the_text_form_round_trips_and_is_one_lowercase_word() -> None:
    ticket = full()
    text = str(ticket)
    assert text.startswith("stt")
    assert text.isalnum()
    assert text == text.lower()
    assert NodeTicket.parse(text) == ticket
    assert NodeTicket.parse(f"  {text.upper()}\n") == ticket  # case and white space do not matter
    assert NodeTicket.coerce(text) == ticket
    assert NodeTicket.coerce(ticket) is ticket
    assert looks_like_ticket(text)
    assert not looks_like_ticket(NODE.hex())  # a node id in hex never starts with "stt"


@given(
    node_id=st.binary(min_size=32, max_size=32),
    ports=st.lists(st.integers(1, 65535), max_size=TICKET_MAX_ENTRIES),
)
def test_any_valid_ticket_round_trips(node_id: bytes, ports: list[int]) -> None:
    ticket = NodeTicket(node_id, tuple((f"10.0.0.{i % 250}", p) for i, p in enumerate(ports)))
    assert NodeTicket.parse(str(ticket)) == ticket


def test_repr_shows_the_node_id_short_and_the_ways() -> None:
    text = repr(full())
    assert NODE.hex()[:16] in text
    assert NODE.hex() not in text
    assert "udp://relay.example.org:9400" in text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("node1abc", "does not start with 'stt'"),
        ("stt!!!!", "not base32"),
        ("stt" + "a" * (TICKET_MAX_CHARS + 1), f"at most {TICKET_MAX_CHARS} characters"),
        (encode([1, NODE, [], [], []])[:-8], "truncated or malformed"),
        (encode({"v": 1}), "truncated or malformed"),  # a map: no maps in a ticket
        (encode("a string"), "not a list"),
        (encode([2, NODE, [], [], []]), "format version 2"),
        (encode([True, NODE, [], [], []]), "format version True"),
        (encode([1, NODE, [], []]), "5 fields, not 4"),
        (encode([1, "a" * 32, [], [], []]), "node_id"),
        (encode([1, NODE[:31], [], [], []]), "node_id"),
        (encode([1, NODE, [["10.0.0.1"]], [], []]), "a (host, port) pair"),
        (encode([1, NODE, [["10.0.0.1", 0]], [], []]), "port is an integer in 1..65535"),
        (encode([1, NODE, [["10.0.0.1", 70000]], [], []]), "1..65535"),
        (encode([1, NODE, [["10.0.0.1", "80"]], [], []]), "1..65535"),
        (encode([1, NODE, [["bad host!", 80]], [], []]), "neither an IP address nor a host name"),
        (encode([1, NODE, [["", 80]], [], []]), "non-empty"),
        (encode([1, NODE, [], ["http://x/stt"], []]), "not a ws or wss URL"),
        (encode([1, NODE, [], [], ["udp://relay.example.org"]]), "needs a port"),
        (encode([1, NODE, [], [], ["ftp://relay"]]), "not a udp or ws or wss URL"),
        (encode([1, NODE, [], [], "udp://x:1"]), "expected a list"),
        (encode([1, NODE, [["10.0.0.1", 1]] * 17, [], []]), "a list of more than 16 entries"),
        (encode([1, NODE, [["a" * 254, 1]], [], []]), "a text longer than 253 characters"),
        (encode([1, NODE + b"x", [], [], []]), "bytes longer than a node id (32 bytes)"),
        (text_of(msgpack.packb([1, NODE, [], [], []]) + b"\x00"), "truncated or malformed"),
        (encode([1, NODE, [[b"\x7f\x00\x00\x01", 1]], [], []]), "non-empty string"),
        (encode([1, NODE, [], [1234], []]), "a URL is a string"),
    ],
)
def test_a_bad_ticket_is_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(TicketError) as caught:
        NodeTicket.parse(text)
    assert why in str(caught.value)
    assert isinstance(caught.value, ConfigError)  # the caller's input


def test_parse_wants_text() -> None:
    with pytest.raises(TypeError, match="a ticket is a str"):
        NodeTicket.parse(b"stt")  # type: ignore[arg-type]


def test_construction_checks_every_value() -> None:
    with pytest.raises(TicketError, match="node_id"):
        NodeTicket(b"short")
    with pytest.raises(TicketError, match="more than 16 entries"):
        NodeTicket(NODE, tuple(("10.0.0.1", p) for p in range(1, 18)))
    with pytest.raises(TicketError, match="port"):
        NodeTicket(NODE, (("10.0.0.1", True),))
    empty = NodeTicket(os.urandom(32))
    assert empty.is_empty
    assert not full().is_empty
