"""``stt node --config FILE`` (:mod:`seigr_stt.cli.nodefile`): every NodeConfig field, errors
that name the key and the file, command-line options over the file."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from seigr_stt.cli.errors import CLIError
from seigr_stt.cli.nodefile import (
    NODE_DEFAULTS,
    OPTION_KEYS,
    apply_node_file,
    config_sections,
    load_node_file,
)
from seigr_stt.cli.parser import build_parser
from seigr_stt.config import EndpointConfig, NodeConfig, SessionConfig, TransportConfig


def _toml(value: object) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def test_every_nodeconfig_field_has_a_key_in_its_table() -> None:
    sections = config_sections()
    expected = {
        "session": SessionConfig,
        "endpoint": EndpointConfig,
        "transport": TransportConfig,
    }
    assert set(sections) == set(expected)
    for name, cls in expected.items():
        assert set(sections[name]) == {f.name for f in dataclasses.fields(cls)}
    listed = {key for keys in sections.values() for key in keys}
    assert listed == {f.name for f in dataclasses.fields(NodeConfig)}


def test_a_file_with_every_field_gives_that_config(tmp_path: Path) -> None:
    # every field at its default, written out by table: the file reads back as NodeConfig()
    lines = []
    for section, keys in config_sections().items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml(getattr(NodeConfig(), key))}" for key in keys]
    path = tmp_path / "node.toml"
    path.write_text("\n".join(lines) + "\n")
    options, config = load_node_file(path)
    assert options == {}
    assert config == NodeConfig()
    # and changed values arrive, "none" where a field may be None
    path.write_text(
        'host = "::1"\nnode_seed = "seeds/node.seed"\nws = false\ncontrol_socket = "none"\n'
        '[session]\npersistent_keepalive_s = 25\nsession_idle_timeout_s = "none"\n'
        "[endpoint]\nmax_sessions = 7\n[transport]\nudp_max_record_size = 1400\n"
    )
    options, config = load_node_file(path)
    assert options == {
        "host": "::1",
        "node_seed": str(tmp_path / "seeds" / "node.seed"),  # relative to the file
        "no_ws": True,
        "control_socket": "none",
    }
    assert config == NodeConfig(
        persistent_keepalive_s=25,
        session_idle_timeout_s=None,
        max_sessions=7,
        udp_max_record_size=1400,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 1\n", "unknown key 'prot'"),
        ("[sesion]\nkeepalive_s = 1\n", "unknown table 'sesion'"),
        ("[session]\nkeepalive = 1\n", "unknown key 'keepalive' in [session]"),
        ("[endpoint]\nkeepalive_s = 1\n", "unknown key 'keepalive_s' in [endpoint]"),
        ("[session]\nkeepalive_s = -1\n", "[session] keepalive_s must be greater than 0"),
        ('[endpoint]\nmax_sessions = "many"\n', "[endpoint] max_sessions must be a number"),
        ('[session]\nkeepalive_s = "none"\n', "[session] keepalive_s must be a number"),
        ("port = 70000\n", "port must be a port number within 0..65535, not 70000"),
        ('echo = "yes"\n', "echo must be true or false"),
        ('allow_peers = ["abc"]\n', "invalid node id 'abc'"),
        ("port = \n", "not valid TOML"),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text)
    with pytest.raises(CLIError) as caught:
        load_node_file(path)
    assert caught.value.code == 2
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "Config." not in str(caught.value)  # no Python class names


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(CLIError, match=r"--config .*nope\.toml: No such file") as caught:
        load_node_file(tmp_path / "nope.toml")
    assert caught.value.code == 2


def _node_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["node", *argv])


def test_command_line_options_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        'host = "0.0.0.0"\nport = 9100\nws_port = 9101\necho = true\nserver = false\n'
        'receive_dir = "inbox"\nlog_level = "debug"\n[endpoint]\nmax_sessions = 3\n'
    )
    args = _node_args("--config", str(path), "--port", "0", "--server", "--log-level", "error")
    config = apply_node_file(args)
    assert config.max_sessions == 3
    assert (args.host, args.port, args.ws_port) == ("0.0.0.0", 0, 9101)
    assert (args.echo, args.server, args.log_level) == (True, True, "error")
    assert args.receive_dir == tmp_path / "inbox"
    assert args.no_ws is False


def test_without_a_file_the_defaults_apply() -> None:
    args = _node_args()
    assert apply_node_file(args) == NodeConfig()
    for attribute, value in NODE_DEFAULTS.items():
        assert getattr(args, attribute) == value
    assert args.receive_dir is None


def test_every_option_key_sets_a_node_option() -> None:
    args = vars(_node_args())
    for key, (attribute, _, _) in OPTION_KEYS.items():
        assert attribute in args, key


def test_the_example_of_docs_cli_md_loads(tmp_path: Path) -> None:
    docs = Path(__file__).parents[2] / "docs" / "cli.md"
    (example,) = re.findall(r"```toml\n(.*?)```", docs.read_text(), re.S)
    path = tmp_path / "node.toml"
    path.write_text(example)
    options, config = load_node_file(path)
    assert options["port"] == 9000
    assert options["shared_seed"] == str(tmp_path / "shared.seed")
    assert config.persistent_keepalive_s == 25
    assert config.session_idle_timeout_s is None
    assert config.max_sessions == 1000
