"""A Griffe extension for the API reference: reST habits of the docstrings, made Markdown.

The docstrings of ``seigr_stt`` use two reST forms that Markdown would render badly:

* Sphinx roles (``:class:`STTSession```, ``:meth:`drain```) would show as ``:class:`` followed by
  code. Each becomes an *optional* autorefs cross-reference: a link when the target is rendered
  somewhere in the site, plain code otherwise (never a warning, so ``--strict`` holds).
* A paragraph ending in ``::`` introduces an indented literal block; inside a list item Markdown
  would run it into the text. Each becomes a fenced code block.

Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):`(?P<tilde>~?)(?P<target>[^`]+)`")


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path of ``target`` as seen from ``obj``'s scope, or None."""
    if target.startswith("seigr_stt."):
        return target
    head, _, rest = target.partition(".")
    try:
        path = obj.resolve(head)
    except griffe.NameResolutionError:
        return None
    return f"{path}.{rest}" if rest else path


def _rewrite(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        target = match["target"]
        title = target.rsplit(".", 1)[-1] if match["tilde"] else target
        if match.group(0).startswith((":meth:", ":func:")):
            title += "()"
        code = f"<code>{html.escape(title)}</code>"
        path = _resolve(obj, target)
        if path is None or any(part.startswith("_") for part in path.split(".")):
            return code
        return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'

    return ROLE.sub(replace, text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _literal_blocks(text: str) -> str:
    """Turn every reST literal block (a paragraph ending in ``::``) into a fenced code block."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.rstrip().endswith("::"):
            out.append(line)
            continue
        base = _indent(line)
        head = line.rstrip()[:-2].rstrip()
        if head.strip():
            out.append(head + ":")
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            i -= 1  # leave trailing blank lines to the text that follows
            block.pop()
        while block and not block[0].strip():
            block.pop(0)
        if not block:
            continue
        cut = min(_indent(b) for b in block if b.strip())
        pad = " " * (4 if base else 0)  # inside a list item: indent to its content
        out += ["", pad + "```"]
        out += [pad + b[cut:] if b.strip() else "" for b in block]
        out.append(pad + "```")
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._visit(pkg)

    def _visit(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _literal_blocks(_rewrite(obj, obj.docstring.value))
        for member in obj.members.values():
            if not member.is_alias and isinstance(member, griffe.Object):
                self._visit(member)
