"""The Noise handshake patterns as data: the pattern table, its parser, ``pskN`` modifiers.

One job: turn a protocol name such as ``Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b`` into the
:class:`Pattern` its handshake runs. :data:`_PATTERN_TEXT` transcribes the pattern table of the
Noise specification, revision 34 (§7.4 one-way, §7.5 interactive, §7.7 deferred patterns), and
``pskN`` modifiers (§9) are applied to the parsed table, so the one token interpreter of
:mod:`seigr_stt.core.noise.handshake_state` runs every supported pattern. No key material here.
"""

from __future__ import annotations

import re as _re
from functools import lru_cache
from typing import Final, NamedTuple

from seigr_stt.exceptions import NoiseConfigError

__all__ = [
    "DH_TOKENS",
    "PATTERNS",
    "SUITE",
    "SUPPORTED_PATTERNS",
    "Message",
    "Pattern",
    "parse_pattern",
    "parse_protocol_name",
]

SUITE: Final = "25519_ChaChaPoly_BLAKE2b"
"""The one supported suite: the tail of every accepted protocol name."""


# -- Handshake patterns (§7) ---------------------------------------------------------------------

# Transcribed from the specification. A line is a message; "->" is sent by the initiator, "<-" by
# the responder; lines above "..." are pre-messages. DH tokens name the initiator's key first.
_PATTERN_TEXT: Final[dict[str, str]] = {
    # One-way patterns (§7.4).
    "N": "<- s | ... | -> e, es",
    "K": "-> s | <- s | ... | -> e, es, ss",
    "X": "<- s | ... | -> e, es, s, ss",
    # Fundamental interactive patterns (§7.5).
    "NN": "-> e | <- e, ee",
    "NK": "<- s | ... | -> e, es | <- e, ee",
    "NX": "-> e | <- e, ee, s, es",
    "KN": "-> s | ... | -> e | <- e, ee, se",
    "KK": "-> s | <- s | ... | -> e, es, ss | <- e, ee, se",
    "KX": "-> s | ... | -> e | <- e, ee, se, s, es",
    "XN": "-> e | <- e, ee | -> s, se",
    "XK": "<- s | ... | -> e, es | <- e, ee | -> s, se",
    "XX": "-> e | <- e, ee, s, es | -> s, se",
    "IN": "-> e, s | <- e, ee, se",
    "IK": "<- s | ... | -> e, es, s, ss | <- e, ee, se",
    "IX": "-> e, s | <- e, ee, se, s, es",
    # Deferred patterns (§7.7).
    "NK1": "<- s | ... | -> e | <- e, ee, es",
    "NX1": "-> e | <- e, ee, s | -> es",
    "X1N": "-> e | <- e, ee | -> s | <- se",
    "X1K": "<- s | ... | -> e, es | <- e, ee | -> s | <- se",
    "XK1": "<- s | ... | -> e | <- e, ee, es | -> s, se",
    "X1K1": "<- s | ... | -> e | <- e, ee, es | -> s | <- se",
    "X1X": "-> e | <- e, ee, s, es | -> s | <- se",
    "XX1": "-> e | <- e, ee, s | -> es, s, se",
    "X1X1": "-> e | <- e, ee, s | -> es, s | <- se",
    "K1N": "-> s | ... | -> e | <- e, ee | -> se",
    "K1K": "-> s | <- s | ... | -> e, es | <- e, ee | -> se",
    "KK1": "-> s | <- s | ... | -> e | <- e, ee, se, es",
    "K1K1": "-> s | <- s | ... | -> e | <- e, ee, es | -> se",
    "K1X": "-> s | ... | -> e | <- e, ee, s, es | -> se",
    "KX1": "-> s | ... | -> e | <- e, ee, se, s | -> es",
    "K1X1": "-> s | ... | -> e | <- e, ee, s | -> se, es",
    "I1N": "-> e, s | <- e, ee | -> se",
    "I1K": "<- s | ... | -> e, es, s | <- e, ee | -> se",
    "IK1": "<- s | ... | -> e, s | <- e, ee, se, es",
    "I1K1": "<- s | ... | -> e, s | <- e, ee, es | -> se",
    "I1X": "-> e, s | <- e, ee, s, es | -> se",
    "IX1": "-> e, s | <- e, ee, se, s | -> es",
    "I1X1": "-> e, s | <- e, ee, s | -> se, es",
}

DH_TOKENS: Final = frozenset({"ee", "es", "se", "ss"})
"""The Diffie-Hellman tokens; each names the initiator's key first."""


class Message(NamedTuple):
    """One handshake message (or pre-message): its sender and its tokens, in order."""

    from_initiator: bool
    tokens: tuple[str, ...]


class Pattern(NamedTuple):
    """A parsed handshake pattern: pre-message keys of each side, messages, one-way or not."""

    initiator_pre: tuple[str, ...]
    responder_pre: tuple[str, ...]
    messages: tuple[Message, ...]
    one_way: bool


def _parse_line(line: str) -> Message:
    arrow, _, rest = line.strip().partition(" ")
    tokens = tuple(t.strip() for t in rest.split(","))
    return Message(arrow == "->", tokens)


def parse_pattern(text: str, one_way: bool) -> Pattern:
    """A :class:`Pattern` from one entry of the table (``"<- s | ... | -> e, es"``)."""
    lines = [line.strip() for line in text.split("|")]
    pre: list[Message] = []
    if "..." in lines:
        cut = lines.index("...")
        pre = [_parse_line(line) for line in lines[:cut]]
        lines = lines[cut + 1 :]
    messages = tuple(_parse_line(line) for line in lines)
    initiator_pre = tuple(t for m in pre if m.from_initiator for t in m.tokens)
    responder_pre = tuple(t for m in pre if not m.from_initiator for t in m.tokens)
    return Pattern(initiator_pre, responder_pre, messages, one_way)


PATTERNS: Final[dict[str, Pattern]] = {
    name: parse_pattern(text, one_way=name in ("N", "K", "X"))
    for name, text in _PATTERN_TEXT.items()
}
"""The parsed table, by base pattern name (no ``psk`` tokens yet); parsed once, at import."""
SUPPORTED_PATTERNS: Final = frozenset(PATTERNS)
"""The base pattern names accepted in a protocol name (each may carry ``pskN`` modifiers)."""

_NAME_RE: Final = _re.compile(
    r"Noise_(?P<base>[A-Z0-9]+)(?P<mods>psk[0-9]+(?:\+psk[0-9]+)*)?_" + SUITE,
)


def _apply_psk(pattern: Pattern, modifiers: str) -> Pattern:
    """Place the ``psk`` tokens (§9.2): psk0 starts message 1, pskN ends message N."""
    messages = [list(m.tokens) for m in pattern.messages]
    seen: set[int] = set()
    for modifier in modifiers.split("+"):
        index = int(modifier.removeprefix("psk"))
        if index in seen or index > len(messages):
            raise NoiseConfigError(f"invalid psk modifier {modifier!r} for this pattern")
        seen.add(index)
        if index == 0:
            messages[0].insert(0, "psk")
        else:
            messages[index - 1].append("psk")
    return pattern._replace(
        messages=tuple(
            Message(m.from_initiator, tuple(tokens))
            for m, tokens in zip(pattern.messages, messages, strict=True)
        )
    )


def parse_protocol_name(protocol_name: str | bytes) -> tuple[bytes, Pattern]:
    """``(name as ASCII bytes, its Pattern with the psk modifiers applied)``.

    Raises :class:`~seigr_stt.exceptions.NoiseConfigError` for a name that is not ASCII, not
    ``Noise_<PATTERN>[pskN[+pskM...]]_25519_ChaChaPoly_BLAKE2b``, or names an unknown pattern.
    A name is parsed once: later calls with it return the same (immutable) result.
    """
    if isinstance(protocol_name, str):
        text = protocol_name
    else:
        try:
            text = bytes(protocol_name).decode("ascii")
        except UnicodeDecodeError as exc:
            raise NoiseConfigError("protocol name must be ASCII") from exc
    return _parse_name(text)


@lru_cache(maxsize=64)
def _parse_name(text: str) -> tuple[bytes, Pattern]:
    """:func:`parse_protocol_name` of an ``str``, cached (a refused name raises every time)."""
    match = _NAME_RE.fullmatch(text)
    if match is None:
        raise NoiseConfigError(
            f"unsupported protocol name {text!r}; expected Noise_<PATTERN>_{SUITE}"
        )
    pattern = PATTERNS.get(match["base"])
    if pattern is None:
        raise NoiseConfigError(f"unsupported handshake pattern {match['base']!r}")
    if match["mods"]:
        pattern = _apply_psk(pattern, match["mods"])
    return text.encode("ascii"), pattern
