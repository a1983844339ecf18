"""The German catalogue as the tests read it: the messages a template asks for (walked
from Django's own parse of it, so no gettext tools are needed) and the committed .po."""

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.template import loader
from django.template.loader_tags import ExtendsNode, IncludeNode
from django.templatetags.i18n import BlockTranslateNode, TranslateNode

PO = Path(settings.BASE_DIR) / "locale" / "de" / "LC_MESSAGES" / "django.po"


@dataclass(frozen=True)
class Entry:
    context: str | None
    msgid: str
    plural: str | None
    msgstrs: tuple[str, ...]
    fuzzy: bool


def po_entries(path: Path = PO) -> dict[tuple[str | None, str], Entry]:
    entries = {}
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        fields: dict[str, list[str]] = {}
        current = ""
        fuzzy = False
        for line in block.splitlines():
            if line.startswith("#"):
                fuzzy = fuzzy or ("fuzzy" in line and line.startswith("#,"))
                continue
            match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d\])?) (".*")$', line)
            if match:
                current = match.group(1)
                fields[current] = [match.group(2)]
            else:
                fields[current].append(line)

        def text(name: str, fields: dict[str, list[str]] = fields) -> str:
            return "".join(ast.literal_eval(part) for part in fields[name])

        msgid = text("msgid")
        if not msgid:
            continue  # the header
        context = text("msgctxt") if "msgctxt" in fields else None
        strs = tuple(text(k) for k in sorted(fields) if k.startswith("msgstr"))
        plural = text("msgid_plural") if "msgid_plural" in fields else None
        entries[(context, msgid)] = Entry(context, msgid, plural, strs, fuzzy)
    return entries


def _nodes(nodelist: Any, seen: set[str]) -> Iterator[Any]:
    for node in nodelist:
        yield node
        if isinstance(node, ExtendsNode):
            parent = node.parent_name.resolve({})
            if parent not in seen:
                seen.add(parent)
                yield from _nodes(loader.get_template(parent).template.nodelist, seen)
        if isinstance(node, IncludeNode):
            name = node.template.resolve({})
            if isinstance(name, str) and name not in seen:
                seen.add(name)
                yield from _nodes(loader.get_template(name).template.nodelist, seen)
        for attr in getattr(node, "child_nodelists", ()):
            yield from _nodes(getattr(node, attr, None) or [], seen)


def _literal(expression: Any) -> str | None:
    """A tag argument's string when it is a literal ("..."), else None (a variable)."""
    if expression is None:
        return None
    var = expression.var
    if isinstance(var, str):
        return str(var)
    return var.literal if isinstance(var.literal, str) else None


def template_messages(name: str) -> set[tuple[str | None, str]]:
    """(context, msgid) of every {% translate %} and {% blocktranslate %} in the
    template, the templates it extends and the ones it includes by a literal name."""
    found: set[tuple[str | None, str]] = set()
    for node in _nodes(loader.get_template(name).template.nodelist, {name}):
        if isinstance(node, TranslateNode):
            msgid = _literal(node.filter_expression)
            if msgid is not None:
                found.add((_literal(node.message_context), msgid))
        elif isinstance(node, BlockTranslateNode):
            msgid, _ = node.render_token_list(node.singular)
            found.add((_literal(node.message_context), msgid))
    return found
