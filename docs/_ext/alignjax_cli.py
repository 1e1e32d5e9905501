"""Sphinx directives that render the command line and the pipeline schema from the code.

``.. alignjax-cli::`` walks the parser that ``alignjax`` itself uses
(:func:`alignjax.app.cli.build_parser`) and writes one section per subcommand: its usage
line, description and every option with its default and help text. ``.. alignjax-toml::``
renders the TOML pipeline schema of :mod:`alignjax.app.config` (the keys each section and
each analysis kind accepts, with the defaults :func:`alignjax.app.config.resolve_options`
fills in). Both are generated at build time, so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

_RST_SPECIAL = re.compile(r"([*`|\\_])")


def _escape(text: str) -> str:
    return _RST_SPECIAL.sub(r"\\\1", text)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    formatter = parser._get_formatter()  # argparse expands %(default)s, %(prog)s this way
    return " ".join(formatter._expand_help(action).split())


def _default(action: argparse.Action) -> str | None:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                           argparse._HelpAction, argparse._VersionAction)):
        return None
    d = action.default
    if d is None or d == argparse.SUPPRESS or d is False:
        return None
    if isinstance(d, (list, tuple)):
        d = " ".join(map(str, d))
    d = str(d)
    return d if d.strip() else None     # an empty default has nothing to show


def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name) or ""


def _option_lines(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            metavar = ""
            if action.nargs != 0:
                mv = action.metavar or action.dest.upper()
                metavar = " " + (" ".join(mv) if isinstance(mv, tuple) else str(mv))
            term = ", ".join(f"``{o}{metavar}``" for o in action.option_strings)
        else:
            mv = action.metavar or action.dest
            term = f"``{mv}`` (positional)"
        lines.append(term)
        text = _escape(_help(parser, action))
        extra = []
        if action.choices is not None and not isinstance(action.choices, dict):
            extra.append("one of " + ", ".join(f"``{c}``" for c in action.choices))
        d = _default(action)
        if d is not None and "default" not in text.lower():
            extra.append(f"default ``{d}``")
        if action.required and action.option_strings:
            extra.append("required")
        if extra:
            text += " (" + "; ".join(extra) + ")"
        lines.append("   " + (text.strip() or "(undocumented)"))
        lines.append("")
    return lines


def cli_rst() -> list[str]:
    from alignjax.app.cli import build_parser

    parser = build_parser()
    lines = [_escape(parser.description or ""), "", ".. code-block:: text", ""]
    lines += ["   " + line for line in parser.format_usage().rstrip().splitlines()]
    lines.append("")
    for name, sub, summary in _subcommands(parser):
        title = f"alignjax {name}"
        lines += [f".. _cli-{name}:", "", title, "-" * len(title), ""]
        if summary:
            lines += [_escape(summary[0].upper() + summary[1:]) + ".", ""]
        if sub.description and sub.description != summary:
            lines += [_escape(" ".join(sub.description.split())), ""]
        lines += [".. code-block:: text", ""]
        lines += ["   " + line for line in sub.format_usage().rstrip().splitlines()]
        lines.append("")
        lines += _option_lines(sub)
    return lines


def toml_rst() -> list[str]:
    from alignjax.app import config

    def value(v) -> str:
        if v is None:
            return "(none)"
        if isinstance(v, bool):
            return "``true``" if v else "``false``"
        if isinstance(v, str):
            return f'``"{v}"``'
        if isinstance(v, (list, tuple)):
            if len(v) > 6:
                v = [*v[:3], "...", v[-1]]
            return "``[" + ", ".join(f'"{x}"' if isinstance(x, str) else str(x) for x in v) + "]``"
        return f"``{v}``"

    lines = ["Top-level tables and the keys each accepts (``[study]``, ``[stimuli]``, one",
             "``[[models]]`` per model, one ``[[data]]`` per data set):", ""]
    lines += [".. list-table::", "   :header-rows: 1", "", "   * - table", "     - keys"]
    for section, keys in config._SECTIONS.items():
        lines += [f"   * - ``{section}``", "     - " + ", ".join(f"``{k}``" for k in sorted(keys))]
    lines += ["", "``[[data]]`` ``kind`` is one of " +
              ", ".join(f'``"{k}"``' for k in config._DATA_KINDS) + ".", ""]
    lines += ["Every ``[[analyses]]`` entry has ``kind``, ``name`` and optionally ``models``;",
              "the other keys depend on its kind (a key left out takes the default shown):", ""]
    for kind, keys in config._ANALYSES.items():
        title = f'kind = "{kind}"'
        lines += [f".. _toml-{kind}:", "", title, "~" * len(title), ""]
        defaults = config._defaults(kind)
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: 30 70", "",
                  "   * - key", "     - default"]
        for k in sorted(keys):
            d = "(required)" if k == "data" else value(defaults.get(k))
            lines += [f"   * - ``{k}``", f"     - {d}"]
        lines.append("")
    return lines


class _GeneratedRST(SphinxDirective):
    has_content = False
    make = staticmethod(lambda: [])

    def run(self):
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(self.make(), source="<alignjax-cli>"),
                                 node)
        return node.children


class CLIDirective(_GeneratedRST):
    make = staticmethod(cli_rst)


class TOMLDirective(_GeneratedRST):
    make = staticmethod(toml_rst)


def setup(app):
    app.add_directive("alignjax-cli", CLIDirective)
    app.add_directive("alignjax-toml", TOMLDirective)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
