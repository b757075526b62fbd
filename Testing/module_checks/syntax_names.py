"""Names read from Python syntax trees (``ast``), shared by the module file checks."""

from __future__ import annotations

import ast


def dotted(node) -> str:
    """``a.b.c`` for a chain of names and attributes, "" for any other expression."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def last_name(node) -> str:
    """``c`` of ``a.b.c`` or of ``c``; "" for any other expression."""
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
