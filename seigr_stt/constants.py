"""Every protocol number of seigr_stt, in one place, with its unit in its name.

``docs/protocol.md`` is the normative text; each block below names the section it comes from.
Durations end in ``_S`` (seconds), sizes in ``_BYTES``/``_SIZE`` (bytes), counts in ``_PACKETS`` or
``_MESSAGES``. The four numbered families of the wire and the API are ``IntEnum`` classes
(:class:`PacketType`, :class:`FrameType`, :class:`CloseCode`, :class:`SessionState`); each member
is equal to its int, and the flat names (``PACKET_DATA``, ``FRAME_ACK``, ``CLOSE_NORMAL``,
``STT_SESSION_STATE_ACTIVE``, ...) stay as aliases of the members.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class SessionState(IntEnum):
    """Session states (user API, chapter 17; docs/protocol.md §9); equal to the
    ``STT_SESSION_STATE_*`` ints."""

    HANDSHAKE = 0x00
    ACTIVE = 0x01
    CLOSING = 0x02
    CLOSED = 0x03


class PacketType(IntEnum):
    """Byte 1 of every packet (§3)."""

    HANDSHAKE_INIT = 1
    HANDSHAKE_RESPONSE = 2
    HANDSHAKE_FINAL = 3
    COOKIE_REPLY = 4
    DATA = 5


class FrameType(IntEnum):
    """The first byte of every frame inside a record (§6). Any other value is a protocol
    violation."""

    PING = 0x01
    PONG = 0x02
    DATAGRAM = 0x04
    CLOSE = 0x05
    ACK = 0x06
    STREAM = 0x07
    RESET_STREAM = 0x08
    STOP_SENDING = 0x09
    MAX_DATA = 0x0A
    MAX_STREAM_DATA = 0x0B
    MAX_STREAMS = 0x0C
    # The DH ratchet (§7.1). 0x12 is reserved for it; other extensions start at 0x18.
    RATCHET_INIT = 0x10
    RATCHET_REPLY = 0x11
    # Transport migration (§18): the sender's other addresses.
    PATHS = 0x18


class CloseCode(IntEnum):
    """The codes this implementation sends in CLOSE (§9). A peer may send any other value up to
    2**62 - 1 (an application's own code): received codes are plain ints."""

    NORMAL = 0
    GOING_AWAY = 1
    PROTOCOL_ERROR = 2
    IDLE_TIMEOUT = 3
    DEAD_PEER = 4
    KEY_EXPIRED = 5
    AEAD_LIMIT_REACHED = 6
    SERVER_FULL = 7  # in a refusing RESPONSE (§4.4), never in CLOSE
    INTERNAL_ERROR = 8  # the application failed (a serve() handler raised), like WebSocket 1011


# -- Session states (user API, chapter 17; docs/protocol.md §9) --------------------------------
STT_SESSION_STATE_HANDSHAKE: Final = SessionState.HANDSHAKE
STT_SESSION_STATE_ACTIVE: Final = SessionState.ACTIVE
STT_SESSION_STATE_CLOSING: Final = SessionState.CLOSING
STT_SESSION_STATE_CLOSED: Final = SessionState.CLOSED

# -- Identity and seeds (§2) ---------------------------------------------------------------------
SEED_MIN_BYTES: Final = 32
SEED_MIN_DISTINCT_BYTE_VALUES: Final = 16
SEED_GENERATED_BYTES: Final = 32
NODE_ID_BYTES: Final = 32
KEY_BYTES: Final = 32
KDF_PERSON: Final = b"seigr-stt-kdf-v1"  # BLAKE2b personalization (16 bytes max)
LABEL_STATIC_KEY: Final = b"static-x25519"
LABEL_NODE_ID: Final = b"node-id"
LABEL_PSK: Final = b"noise-psk"
LABEL_MAC1: Final = b"mac1"
LABEL_COOKIE: Final = b"cookie-reply"
LABEL_SESSION_KEY: Final = b"session-key"
LABEL_EXPORTER: Final = b"exporter"  # exporter_0 = KDF(k1 || k2, LABEL_EXPORTER || h) (§2.3)

# -- Handshake (§3, §4) --------------------------------------------------------------------------
#: Byte 0 of every STT packet: the wire code point of the protocol version (§19). It is a code
#: point, not a number to compare: 1 = protocol 1.0, 2 = protocol 1.1 (this one).
PROTOCOL_VERSION: Final = 2
PROTOCOL_VERSION_NAME: Final = "1.1"
#: Code points of earlier versions this node recognises, to say so when it drops their packets.
LEGACY_PROTOCOL_VERSIONS: Final = {1: "1.0"}
#: Byte 0 of a VERSIONS packet (§19): never a protocol version, so every version drops it as
#: `version` unless it speaks version negotiation.
VERSION_NEGOTIATION: Final = 0
VERSIONS_MAX: Final = 16  # versions a VERSIONS packet may list
#: Byte 0 of relay packets (§17.2): the relay protocol did not change with 1.1.
RELAY_PROTOCOL_VERSION: Final = 1
NOISE_PROTOCOL_NAME: Final = b"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b"
PROLOGUE: Final = b"seigr-stt/1.1 " + NOISE_PROTOCOL_NAME
INDEX_BYTES: Final = 4
SESSION_ID_BYTES: Final = 8
MAC_BYTES: Final = 16
DH_PUBLIC_BYTES: Final = 32
AEAD_TAG_BYTES: Final = 16
COOKIE_BYTES: Final = 16
COOKIE_NONCE_BYTES: Final = 24
HANDSHAKE_INIT_MIN_SIZE: Final = 256  # msg1 is padded to at least this: no amplification
HANDSHAKE_PAYLOAD_MAX_BYTES: Final = 512
HANDSHAKE_MESSAGE_MAX_SIZE: Final = 1024

# -- Packet types: byte 1 of every packet (§3) ---------------------------------------------------
PACKET_HANDSHAKE_INIT: Final = PacketType.HANDSHAKE_INIT
PACKET_HANDSHAKE_RESPONSE: Final = PacketType.HANDSHAKE_RESPONSE
PACKET_HANDSHAKE_FINAL: Final = PacketType.HANDSHAKE_FINAL
PACKET_COOKIE_REPLY: Final = PacketType.COOKIE_REPLY
PACKET_DATA: Final = PacketType.DATA

HANDSHAKE_INIT_HEADER_SIZE: Final = 8  # version, type, 2 reserved, sender index
HANDSHAKE_REPLY_HEADER_SIZE: Final = 12  # version, type, 2 reserved, sender index, receiver index
COOKIE_REPLY_SIZE: Final = 64
RECORD_HEADER_SIZE: Final = 20  # version, type, epoch, echoed epoch, session id(8), counter(8)

# -- Records (§5) --------------------------------------------------------------------------------
RECORD_PAD_MULTIPLE_BYTES: Final = 16
INNER_TYPE_FRAMES: Final = 0x01
UDP_MAX_RECORD_SIZE: Final = 1232  # IPv6 minimum MTU 1280 - 40 (IPv6) - 8 (UDP)
WEBSOCKET_MAX_RECORD_SIZE: Final = 65536
# A TCP sender hands the device at most this many bytes as one segmentation-offload burst (GSO/
# TSO): Linux's 65,536-byte gso_max_size less its header reserve, of which a burst takes the whole
# segments that fit. A WebSocket frame that fits one burst arrives in one piece; one a few bytes
# larger sends its last bytes as a separate tiny segment (§12.2, "Record size").
TCP_BURST_BYTES: Final = 65_536 - 1 - 320
TLS_MAX_PLAINTEXT_BYTES: Final = 16_384  # largest TLS record payload (RFC 8446 §5.1)
TLS_RECORD_OVERHEAD_BYTES: Final = 29  # header, explicit nonce and tag of a TLS 1.2 AES-GCM record
# Path-MTU probing (§12.1, in the manner of RFC 8899): record sizes tried above the base size, in
# order, while each probe is acknowledged. 65000 stays below the IPv4 UDP payload limit (65507).
PMTU_PROBE_SIZES: Final = (1452, 4096, 8192, 16384, 32768, 65000)
PMTU_DEFAULT_PROBE_MAX: Final = 65000
PMTU_MAX_PROBES: Final = 3  # lost probes at one size before probing stops (RFC 8899 MAX_PROBES)
PMTU_PROBE_AFTER_RECORDS: Final = 4  # probe once this many full records wait to be sent
PMTU_BLACK_HOLE_PTOS: Final = 3  # consecutive probe timeouts that send records back to base size
PMTU_REPROBE_AFTER_S: Final = 1.0  # after a black-hole fallback, probe again this much later
RECORD_MIN_SIZE: Final = RECORD_HEADER_SIZE + RECORD_PAD_MULTIPLE_BYTES + AEAD_TAG_BYTES
REPLAY_WINDOW_BLOCK_BITS: Final = 64
REPLAY_WINDOW_BLOCKS: Final = 128
REPLAY_WINDOW_PACKETS: Final = (REPLAY_WINDOW_BLOCKS - 1) * REPLAY_WINDOW_BLOCK_BITS  # 8128
REKEY_AFTER_MESSAGES: Final = 1 << 60
REJECT_AFTER_MESSAGES: Final = (1 << 64) - (1 << 13) - 1
#: Records that fail authentication under one receive key before the session closes
#: (ChaCha20-Poly1305's integrity limit, RFC 9001 §6.6: 2**36 forgery attempts per key).
AEAD_INTEGRITY_LIMIT: Final = 1 << 36
# Calls (records sealed or opened) under one traffic key before its cipher gets an OpenSSL context
# (about 2.2 KiB held as long as the key; until then libsodium's stateless one-shot call, same
# bytes). Not a wire parameter: an idle session never pays for the contexts (memory per session).
AEAD_CONTEXT_AFTER_CALLS: Final = 8

# -- Key rotation (§7) ---------------------------------------------------------------------------
EPOCH_MODULUS: Final = 256
KEY_ROTATION_MIN_INTERVAL_S: Final = 0.05
KEY_GRACE_MIN_S: Final = 2.0
KEY_GRACE_RTT_FACTOR: Final = 3.0
# The DH ratchet (§7.1): fresh X25519 keys exchanged inside the session, mixed into the next epoch.
RATCHET_INTERVAL_S: Final = 120.0  # default of SessionConfig.ratchet_interval_s
RATCHET_RESPONDER_FACTOR: Final = 1.25  # the session's responder waits this much longer
# The session's initiator ratchets 1% early (118.8 s of 120 s), so its INIT reaches the responder
# before the responder's rekey_after_s clock, which started one delay later, fires a hash rotation.
RATCHET_INITIATOR_FACTOR: Final = 0.99
RATCHET_PUBLIC_KEY_BYTES: Final = 32

# -- Timers (§8), WireGuard's values -------------------------------------------------------------
REKEY_AFTER_TIME_S: Final = 120.0
REJECT_AFTER_TIME_S: Final = 180.0
HANDSHAKE_RETRY_INITIAL_S: Final = 1.0
HANDSHAKE_RETRY_MAX_S: Final = 5.0
HANDSHAKE_RETRY_JITTER_S: Final = 0.333
HANDSHAKE_ATTEMPT_MAX_S: Final = 90.0
RESPONDER_HALF_OPEN_TIMEOUT_S: Final = 15.0
KEEPALIVE_TIMEOUT_S: Final = 10.0
DEAD_PEER_TIMEOUT_S: Final = 10.0  # an ack-eliciting record unanswered this long: the peer is gone
# ... and at least this many probe timeouts in a row (§8, §14.5): a live peer behind heavy loss
# is not declared dead after a handful of lost probes.
DEAD_PEER_MIN_PTOS: Final = 6
# The backed-off probe interval is capped at dead_peer_timeout_s divided by this, so that the
# probes keep coming while the dead-peer timer runs (RFC 9002's backoff alone sends five in 10 s).
DEAD_PEER_PTO_DIVISOR: Final = 4
# Nothing received this long: send a PING that must be acknowledged. 15 s, not 5: one PING and one
# ACK per interval per idle session is 1,300 records/s on a server holding 10,000 (and still
# inside the 30 s after which the most forgetful NATs drop a UDP mapping).
PING_INTERVAL_S: Final = 15.0
KEY_ERASE_AFTER_S: Final = 540.0  # REJECT_AFTER_TIME_S * 3
CLOSE_RETRANSMIT_S: Final = 0.25
CLOSE_ATTEMPTS: Final = 4
TOMBSTONE_S: Final = 60.0

# -- Path validation when a peer's address changes (§5.3; RFC 9000 §8.2, §9) -------------------
PATH_AMPLIFICATION_FACTOR: Final = 3  # bytes sent to an unvalidated address per byte from it
PATH_CHALLENGE_ATTEMPTS: Final = 3  # challenges sent before a candidate address is given up
PATH_CHALLENGE_MIN_INTERVAL_S: Final = 0.1  # at least this (else 2 x PTO) between challenges

# -- Transport migration: several paths per session (§18) ---------------------------------------
PATH_DEGRADED_PTO_COUNT: Final = 2  # probe timeouts in a row after which the path is degraded
PATH_QUIET_PTOS: Final = 3  # a peer on a worse path is followed after this many PTOs of silence
PATH_REPROBE_INTERVAL_S: Final = 5.0  # default: a better standby path is probed this often
PATH_STANDBY_MAX: Final = 4  # other paths a session remembers (it left, or was given)
PATH_PROBES_MAX: Final = 4  # paths of our choosing validated at once
PATHS_MAX_ENTRIES: Final = 8  # addresses in one PATHS frame
PATHS_URL_MAX_BYTES: Final = 255  # the longest WebSocket URL in a PATHS frame

# -- Denial of service (§10) ---------------------------------------------------------------------
COOKIE_SECRET_LIFETIME_S: Final = 120.0
HANDSHAKE_HALF_OPEN_MAX: Final = 1024
HANDSHAKE_LOAD_THRESHOLD: Final = 64  # half-open handshakes above which mac2 is required
HANDSHAKE_RATE_PER_SOURCE_PER_S: Final = 20.0
HANDSHAKE_BURST_PER_SOURCE: Final = 40
HANDSHAKE_RATE_SOURCES_MAX: Final = 4096  # token buckets kept (LRU), one per source host
HANDSHAKE_RATE_UNPROVEN_PER_S: Final = 100.0  # INITs without a cookie, all sources together
HANDSHAKE_BURST_UNPROVEN: Final = 200
INIT_REPLAY_WINDOW_S: Final = 180.0  # a completed handshake's INIT is refused this long after
INIT_REPLAY_CACHE_MAX: Final = 4096  # completed INITs remembered (oldest first out)
PEER_TIMESTAMP_TABLE_MAX: Final = 4096

# -- Close codes carried by CLOSE (§9) -----------------------------------------------------------
CLOSE_NORMAL: Final = CloseCode.NORMAL
CLOSE_GOING_AWAY: Final = CloseCode.GOING_AWAY
CLOSE_PROTOCOL_ERROR: Final = CloseCode.PROTOCOL_ERROR
CLOSE_IDLE_TIMEOUT: Final = CloseCode.IDLE_TIMEOUT
CLOSE_DEAD_PEER: Final = CloseCode.DEAD_PEER
CLOSE_KEY_EXPIRED: Final = CloseCode.KEY_EXPIRED
CLOSE_AEAD_LIMIT_REACHED: Final = CloseCode.AEAD_LIMIT_REACHED
CLOSE_SERVER_FULL: Final = CloseCode.SERVER_FULL
CLOSE_INTERNAL_ERROR: Final = CloseCode.INTERNAL_ERROR
CLOSE_REASON_MAX_BYTES: Final = 123

# -- Frames (§6) ---------------------------------------------------------------------------------
FRAME_PING: Final = FrameType.PING
FRAME_PONG: Final = FrameType.PONG
FRAME_DATAGRAM: Final = FrameType.DATAGRAM
FRAME_CLOSE: Final = FrameType.CLOSE
FRAME_ACK: Final = FrameType.ACK
FRAME_STREAM: Final = FrameType.STREAM
FRAME_RESET_STREAM: Final = FrameType.RESET_STREAM
FRAME_STOP_SENDING: Final = FrameType.STOP_SENDING
FRAME_MAX_DATA: Final = FrameType.MAX_DATA
FRAME_MAX_STREAM_DATA: Final = FrameType.MAX_STREAM_DATA
FRAME_MAX_STREAMS: Final = FrameType.MAX_STREAMS
FRAME_RATCHET_INIT: Final = FrameType.RATCHET_INIT
FRAME_RATCHET_REPLY: Final = FrameType.RATCHET_REPLY
ACK_RANGES_MAX_ON_WIRE: Final = 256
# Work per record is bounded: at most this many frames, and at most one ACK frame, per record; a
# record beyond either is a protocol violation (a record of tiny frames must cost about what a
# record of data of the same size costs).
MAX_FRAMES_PER_RECORD: Final = 256

# -- Application-level defaults (config.py) ------------------------------------------------------
DEFAULT_MAX_SESSIONS: Final = 10_000
DEFAULT_MAX_MESSAGE_SIZE: Final = 16 * 1024 * 1024
DEFAULT_SESSION_IDLE_TIMEOUT_S: Final = 300.0
WEBSOCKET_PATH: Final = "/stt"

# -- Acknowledgements and loss recovery (§14), RFC 9002's values ---------------------------------
INITIAL_RTT_S: Final = 0.1  # smoothed RTT before the first sample (RFC 9002 §6.2.2 uses 333 ms)
MAX_ACK_DELAY_S: Final = 0.025
ACK_DELAY_EXPONENT: Final = 3
ACK_ELICITING_THRESHOLD: Final = 2  # acknowledge at once every 2nd ack-eliciting record
ACK_RANGES_MAX: Final = 32
GRANULARITY_S: Final = 0.001
PACKET_THRESHOLD: Final = 3
PACKET_THRESHOLD_MAX: Final = 64  # the reordering threshold adapts up to this (spurious losses)
LOST_REMEMBERED: Final = 64  # records declared lost kept to recognise a spurious loss
TIME_THRESHOLD: Final = 9 / 8
PERSISTENT_CONGESTION_THRESHOLD: Final = 3
# Over a reliable transport (WebSocket, §14.8) an ACK is owed at most this long after the first
# ack-eliciting record it covers, never at once: it rides on credit frames when they go sooner.
# Equal to MAX_ACK_DELAY_S, so a peer's probe timeout (which allows for it) never fires early.
RELIABLE_ACK_INTERVAL_S: Final = MAX_ACK_DELAY_S

# -- Congestion control (§15): NewReno (RFC 9002 §7) with pacing -------------------------------
INITIAL_WINDOW_PACKETS: Final = 10
MINIMUM_WINDOW_PACKETS: Final = 2
LOSS_REDUCTION_FACTOR: Final = 0.5
PACING_GAIN: Final = 1.25
PACING_BURST_PACKETS: Final = 16

# -- Streams and flow control (§16) ------------------------------------------------------------
STREAM_INITIAL_WINDOW_BYTES: Final = 1024 * 1024  # default of SessionConfig.stream_window
SESSION_INITIAL_WINDOW_BYTES: Final = 4 * 1024 * 1024  # default of SessionConfig.session_window
MAX_STREAMS_DEFAULT: Final = 256
# Stream ids (§16.1): bit 0 is the opener's side (0 = the session's initiator), bit 1 the kind
# (0 = bidirectional byte stream, 1 = unidirectional message channel), the rest the index.
STREAM_SIDE_BIT: Final = 0x1
STREAM_KIND_BIT: Final = 0x2
STREAM_INDEX_SHIFT: Final = 2
# A unidirectional byte stream (§16.4) is a byte stream whose opener stops its receiving half at
# once: STOP_SENDING with this code (the largest varint), reserved for it.
STREAM_CODE_UNIDIRECTIONAL: Final = (1 << 62) - 1
STREAM_SEND_HIGH_WATER_BYTES: Final = 1024 * 1024
# Out-of-order data held for reassembly: one separate range ("fragment") per this many bytes of
# the window, and never fewer than REASSEMBLY_MIN_FRAGMENTS, per stream and per session; a peer
# that scatters more is closed with CLOSE_PROTOCOL_ERROR (§16.3). A fragment costs ~72 bytes of
# bookkeeping, so this keeps it under 8 % of the window, whatever the chunking.
REASSEMBLY_BYTES_PER_FRAGMENT: Final = 1024
REASSEMBLY_MIN_FRAGMENTS: Final = 64


# -- The relay (§17) -----------------------------------------------------------------------------
class RelayPacketType(IntEnum):
    """Byte 1 of a relay packet (§17.2): 0x20..0x2F, never an STT packet type."""

    HELLO = 0x20
    CHALLENGE = 0x21
    REGISTER = 0x22
    REGISTERED = 0x23
    REFUSED = 0x24
    SEND = 0x25
    DELIVER = 0x26
    UNREACHABLE = 0x27


class RelayRefusal(IntEnum):
    """Why a relay refused a REGISTER (§17.3), in REFUSED; a hint, not authenticated."""

    BAD_PROOF = 1  # the proof of the node's static key did not verify
    STALE_COOKIE = 2  # the cookie is not the relay's, or too old
    RELAY_FULL = 3  # the relay holds max_registrations
    SOURCE_LIMIT = 4  # this source holds max_registrations_per_source


RELAY_PACKET_TYPE_FIRST: Final = 0x20
RELAY_PACKET_TYPE_LAST: Final = 0x2F
RELAY_NONCE_BYTES: Final = 16
RELAY_HELLO_SIZE: Final = 88  # padded to the size of a REGISTER: the relay never amplifies
RELAY_CHALLENGE_SIZE: Final = 72
RELAY_REGISTER_SIZE: Final = 88
RELAY_REGISTERED_SIZE: Final = 59
RELAY_REFUSED_SIZE: Final = 20
RELAY_UNREACHABLE_SIZE: Final = 34
RELAY_FORWARD_HEADER_SIZE: Final = 34  # version, type, node id (32): SEND and DELIVER
# The largest STT packet a relay forwards by default: a relayed UDP datagram stays within
# UDP_MAX_RECORD_SIZE (IPv6 minimum MTU), whatever the transport of either end.
RELAY_MAX_RECORD_SIZE: Final = UDP_MAX_RECORD_SIZE - RELAY_FORWARD_HEADER_SIZE
RELAY_COOKIE_LIFETIME_S: Final = 30  # a CHALLENGE's cookie is accepted this long
RELAY_REGISTRATION_LIFETIME_S: Final = 60  # a registration lives this long unless renewed
RELAY_RENEW_FRACTION: Final = 1 / 3  # nodes renew after this fraction of the lifetime
RELAY_REGISTER_TIMEOUT_S: Final = 5.0  # a node gives up registering after this long
RELAY_REGISTER_RETRY_S: Final = 0.5  # and resends HELLO/REGISTER over UDP this often
RELAY_SWEEP_INTERVAL_S: Final = 5.0  # how often the relay forgets expired registrations
LABEL_RELAY_KEY: Final = b"relay-register"  # kdf label of the registration MAC key
LABEL_RELAY_COOKIE: Final = b"relay-cookie"  # kdf label of the relay's cookie secret
