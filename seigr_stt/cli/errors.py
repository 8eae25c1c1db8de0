"""How an ``stt`` command ends: the exit codes, their help text and :class:`CLIError`.

This module imports nothing from the package, so every command module can raise
:class:`CLIError` without importing ``seigr_stt.cli`` itself (whose ``main`` imports the commands
through the parser).
"""

from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_HANDSHAKE_TIMEOUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CLIError",
    "exit_codes",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_HANDSHAKE_TIMEOUT = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = """\
exit codes:
  0    success
  1    failure (network error, refused transfer, no reply, missing optional package)
  2    usage error (bad arguments, missing or weak seed)
  3    handshake timeout: the peer is unreachable, not in server mode, does not share our
       shared seed, or does not allow our node id
  130  interrupted (Ctrl-C)
"""

_HANDSHAKE_LINES = 2  # the two lines of code 3 in EXIT_CODES


def exit_codes(handshake: bool) -> str:
    r"""The ``exit codes:`` help footer; without code 3 unless the command ``handshake``\s."""
    if handshake:
        return EXIT_CODES
    lines = EXIT_CODES.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  3 "))
    return "".join(lines[:start] + lines[start + _HANDSHAKE_LINES :])


class CLIError(Exception):
    """Ends a command with ``code`` after printing ``message`` on standard error."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code
