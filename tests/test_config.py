"""Configuration: validation by field type and bounds, errors that name the field, the parts."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from seigr_stt import ConfigError, NodeConfig
from seigr_stt.config import EndpointConfig, SessionConfig, TransportConfig


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_sessions": 1.5}, r"NodeConfig\.max_sessions must be an int, not 1\.5"),
        ({"max_sessions": True}, r"NodeConfig\.max_sessions must be a number, not True"),
        ({"max_sessions": 0}, r"NodeConfig\.max_sessions must be greater than 0, not 0"),
        ({"stream_window": -1}, r"NodeConfig\.stream_window must be at least 1024, not -1"),
        ({"session_window": 512}, r"NodeConfig\.session_window must be at least 1024"),
        ({"stream_window": 1 << 41}, r"NodeConfig\.stream_window must be at most"),
        ({"keepalive_s": "5"}, r"NodeConfig\.keepalive_s must be a number, not '5'"),
        ({"keepalive_s": float("nan")}, r"NodeConfig\.keepalive_s must be finite"),
        ({"rekey_after_s": None}, r"NodeConfig\.rekey_after_s must be a number, not None"),
        ({"rekey_after_s": 170.5}, r"NodeConfig\.rekey_after_s must be at most 170"),
        ({"capabilities": -1}, r"NodeConfig\.capabilities must be at least 0, not -1"),
        ({"udp_max_record_size": 255}, r"NodeConfig\.udp_max_record_size must be at least 256"),
        (
            {"handshake_load_threshold": 10, "handshake_half_open_max": 5},
            r"handshake_load_threshold cannot exceed handshake_half_open_max",
        ),
        (
            {"websocket_handshake_timeout_s": 0},
            r"NodeConfig\.websocket_handshake_timeout_s must be greater than 0",
        ),
        ({"websocket_idle_timeout_s": None}, r"websocket_idle_timeout_s must be a number"),
        ({"websocket_max_pending": 0}, r"NodeConfig\.websocket_max_pending must be greater"),
        ({"websocket_send_queue_bytes": 255}, r"websocket_send_queue_bytes must be at least 256"),
        (
            {"websocket_handshake_timeout_s": 20.0},  # beyond the 15 s session deadline
            r"NodeConfig\.websocket_session_timeout_s must be at least the handshake timeout",
        ),
        (
            {"websocket_max_pending": 4, "websocket_max_pending_per_source": 5},
            r"websocket_max_pending_per_source cannot exceed websocket_max_pending",
        ),
        (
            {"websocket_max_record_size": 2 * 1024 * 1024},  # above the 1 MiB queue
            r"websocket_send_queue_bytes must hold one record",
        ),
    ],
)
def test_bad_values_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NodeConfig(**fields)


def test_floats_take_ints_and_none_only_where_allowed() -> None:
    config = NodeConfig(keepalive_s=5, session_idle_timeout_s=None, persistent_keepalive_s=None)
    assert config.keepalive_s == 5
    assert config.session_idle_timeout_s is None
    assert NodeConfig(capabilities=0).capabilities == 0  # zero allowed where the bound is >= 0
    assert NodeConfig(stream_window=1024).stream_window == 1024  # an inclusive bound


def test_the_parts_validate_on_their_own_and_name_their_class() -> None:
    with pytest.raises(ConfigError, match=r"SessionConfig\.stream_window"):
        SessionConfig(stream_window=100)
    with pytest.raises(ConfigError, match=r"EndpointConfig\.max_sessions must be an int"):
        EndpointConfig(max_sessions=2.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"TransportConfig\.websocket_max_record_size"):
        TransportConfig(websocket_max_record_size=17 * 1024 * 1024)


def test_a_node_config_is_each_of_its_parts_with_the_same_values() -> None:
    config = NodeConfig(max_sessions=7, stream_window=64 * 1024, udp_max_record_size=1400)
    assert isinstance(config, SessionConfig)
    assert isinstance(config, EndpointConfig)
    assert isinstance(config, TransportConfig)
    part_fields = {
        f.name
        for part in (SessionConfig, EndpointConfig, TransportConfig)
        for f in dataclasses.fields(part)
    }
    assert {f.name for f in dataclasses.fields(NodeConfig)} == part_fields
    assert config.max_sessions == 7
    assert config.stream_window == 64 * 1024
    assert config.udp_max_record_size == 1400


def test_configs_are_frozen_and_keyword_only() -> None:
    config = NodeConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_sessions = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        NodeConfig(100)  # type: ignore[call-arg]
