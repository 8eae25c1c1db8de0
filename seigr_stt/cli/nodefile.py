"""``stt node --config FILE``: the node's settings in a TOML file (read with :mod:`tomllib`).

The file has top-level keys for the command's own options (:data:`OPTION_KEYS`: ``host``,
``port``, seed files, ``echo``, …) and one table per part of
:class:`~seigr_stt.config.NodeConfig`: ``[session]``, ``[endpoint]`` and ``[transport]``, whose
keys are the fields of :class:`~seigr_stt.config.SessionConfig`,
:class:`~seigr_stt.config.EndpointConfig` and :class:`~seigr_stt.config.TransportConfig`. The
tables are built from the dataclass fields (:func:`config_sections`), so a field added to one of
them is accepted here without a change; a field declared on ``NodeConfig`` itself would go in
``[node]``. A field that may be None takes the string ``"none"``. Relative paths are relative
to the file's directory. An unknown key or table is an error naming it and the file; an option
given on the command line wins over the file (docs/cli.md, "The node's config file").
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seigr_stt.cli.errors import EXIT_USAGE, CLIError
from seigr_stt.cli.pinning import parse_node_id
from seigr_stt.config import NodeConfig
from seigr_stt.exceptions import ConfigError

__all__ = [
    "NODE_DEFAULTS",
    "OPTION_KEYS",
    "apply_node_file",
    "config_sections",
    "load_node_file",
]

NODE_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 9000,
    "ws_port": 9001,
    "no_ws": False,
    "server": True,
    "echo": False,
    "metrics_host": "127.0.0.1",
    "log_level": "info",
}
"""What ``stt node`` uses for an option given neither on the command line nor in the file."""

_LOG_LEVELS = ("debug", "info", "warning", "error")


def _text(key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string, not {value!r}")
    return value


def _port(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"{key} must be a port number within 0..65535, not {value!r}")
    return value


def _flag(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


def _level(key: str, value: object) -> str:
    if value not in _LOG_LEVELS:
        raise ValueError(f"{key} must be one of {', '.join(_LOG_LEVELS)}, not {value!r}")
    return str(value)


def _node_ids(key: str, value: object) -> list[bytes]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key} must be a non-empty list of node ids, not {value!r}")
    return [parse_node_id(_text(key, item)) for item in value]


# key in the file -> (attribute of the parsed arguments, parser, is a path)
_Parse = Callable[[str, object], object]
OPTION_KEYS: dict[str, tuple[str, _Parse, bool]] = {
    "node_seed": ("node_seed", _text, True),
    "shared_seed": ("shared_seed", _text, True),
    "allow_peers": ("allow_peer", _node_ids, False),
    "allowed_peers": ("allowed_peers", _text, True),
    "host": ("host", _text, False),
    "port": ("port", _port, False),
    "ws_port": ("ws_port", _port, False),
    "ws": ("no_ws", lambda key, value: not _flag(key, value), False),
    "server": ("server", _flag, False),
    "echo": ("echo", _flag, False),
    "receive_dir": ("receive_dir", _text, True),
    "metrics_port": ("metrics_port", _port, False),
    "metrics_host": ("metrics_host", _text, False),
    "control_socket": ("control_socket", _text, True),
    "log_level": ("log_level", _level, False),
}
"""The top-level keys of the file: each sets one ``stt node`` option (``ws = false`` is
``--no-ws``, ``allow_peers`` a list of ``--allow-peer`` ids)."""


def _section_of(owner: type) -> str:
    return owner.__name__.removesuffix("Config").lower()


def config_sections() -> dict[str, dict[str, dataclasses.Field[Any]]]:
    """``{table: {key: field}}`` for every field of :class:`NodeConfig`, from the dataclasses.

    A field's table is named after the class that declares it: ``session``, ``endpoint``,
    ``transport`` (``node`` for a field of ``NodeConfig`` itself).
    """
    sections: dict[str, dict[str, dataclasses.Field[Any]]] = {}
    for f in dataclasses.fields(NodeConfig):
        owner = next(cls for cls in NodeConfig.__mro__ if f.name in inspect.get_annotations(cls))
        sections.setdefault(_section_of(owner), {})[f.name] = f
    return sections


def _allows_none(hint: Any) -> bool:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return type(None) in typing.get_args(hint)
    return False


_CLASS_FIELD = re.compile(r"\b[A-Z]\w*Config\.(\w+)")


def _human(message: str) -> str:
    """A ConfigError text with ``NodeConfig.field`` written as ``[table] field``."""
    tables = {key: name for name, keys in config_sections().items() for key in keys}

    def table(match: re.Match[str]) -> str:
        name = match[1]
        return f"[{tables[name]}] {name}" if name in tables else match[0]

    return _CLASS_FIELD.sub(table, message)


def load_node_file(path: Path) -> tuple[dict[str, Any], NodeConfig]:
    """Read ``path``: the options it sets (``{attribute: value}``) and its :class:`NodeConfig`.

    Raises :class:`CLIError` (exit 2), its message starting with the path, when the file cannot
    be read or is not TOML, names an unknown key or table, or holds a value of the wrong type or
    out of bounds.
    """
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise CLIError(f"--config {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    except tomllib.TOMLDecodeError as exc:
        raise CLIError(f"{path}: not valid TOML: {exc}", EXIT_USAGE) from None
    sections = config_sections()
    hints = typing.get_type_hints(NodeConfig)
    options: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if key in sections:
            if not isinstance(value, dict):
                raise CLIError(f"{path}: [{key}] must be a table", EXIT_USAGE)
            for name, item in value.items():
                if name not in sections[key]:
                    raise CLIError(
                        f"{path}: unknown key {name!r} in [{key}] (known: "
                        f"{', '.join(sorted(sections[key]))})",
                        EXIT_USAGE,
                    )
                if item == "none" and _allows_none(hints[name]):
                    item = None
                fields[name] = item
        elif key in OPTION_KEYS:
            attribute, parse, is_path = OPTION_KEYS[key]
            try:
                parsed = parse(key, value)
            except ValueError as exc:
                raise CLIError(f"{path}: {exc}", EXIT_USAGE) from None
            if is_path and parsed != "none":  # control_socket = "none": no socket
                parsed = str(path.parent / Path(str(parsed)).expanduser())
            options[attribute] = parsed
        else:
            where = "table" if isinstance(value, dict) else "key"
            raise CLIError(
                f"{path}: unknown {where} {key!r} (options: {', '.join(sorted(OPTION_KEYS))}; "
                f"tables: {', '.join(f'[{s}]' for s in sections)})",
                EXIT_USAGE,
            )
    try:
        config = NodeConfig(**fields)
    except ConfigError as exc:
        raise CLIError(f"{path}: {_human(str(exc))}", EXIT_USAGE) from None
    return options, config


def apply_node_file(args: argparse.Namespace) -> NodeConfig:
    """Fill ``stt node``'s options: the command line, else ``--config`` FILE, else the defaults.

    Options not given on the command line are None in ``args``; afterwards each holds its
    value (``receive_dir`` a :class:`Path` or None). Returns the file's :class:`NodeConfig`
    (the defaults without ``--config``). Raises :class:`CLIError` as :func:`load_node_file`.
    """
    config = NodeConfig()
    options: dict[str, Any] = {}
    if args.config is not None:
        options, config = load_node_file(Path(args.config))
    for attribute, value in options.items():
        if getattr(args, attribute, None) is None:
            setattr(args, attribute, value)
    for attribute, value in NODE_DEFAULTS.items():
        if getattr(args, attribute, None) is None:
            setattr(args, attribute, value)
    if isinstance(args.receive_dir, str):
        args.receive_dir = Path(args.receive_dir)
    return config
