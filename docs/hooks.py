"""mkdocs hook: component tables generated at build time from ``geofm list --json``.

A page writes ``<!-- geofm:components -->`` where the tables go; the hook replaces it
with one table per kind, listing what the environment building the docs has installed.
Nothing is committed, so the tables never drift from the registry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

MARKER = "<!-- geofm:components -->"
KIND_TITLES = {
    "backbone": "Backbones", "neck": "Necks", "decoder": "Decoders", "head": "Heads",
    "loss": "Losses", "model_factory": "Model factories",
}

_cache: list[dict[str, Any]] | None = None


def _components() -> list[dict[str, Any]]:
    """The registry's components, from a real ``geofm list --json`` run."""
    global _cache
    if _cache is None:
        done = subprocess.run(
            [sys.executable, "-m", "geofm_core.cli", "list", "--json"],
            capture_output=True, text=True, check=True,
        )
        _cache = json.loads(done.stdout)
    return _cache


def _cell(text: str) -> str:
    # `<name>` in a description would be read as an HTML tag and vanish.
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\n", " "))


def component_tables() -> str:
    """Markdown: one table per kind (name, provided by, description)."""
    components = _components()
    parts = [f"*{len(components)} components, generated from `geofm list --json` when this "
             "site was built.*\n"]
    for kind, title in KIND_TITLES.items():
        rows = [c for c in components if c["kind"] == kind]
        if not rows:
            continue
        parts.append(f"## {title}\n")
        parts.append("| name | distribution | description |\n|---|---|---|")
        for c in sorted(rows, key=lambda c: c["name"]):
            parts.append(f"| `{c['name']}` | {c.get('distribution', '')} | "
                         f"{_cell(c.get('description', ''))} |")
        parts.append("")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker with the generated tables."""
    if MARKER in markdown:
        return markdown.replace(MARKER, component_tables())
    return markdown
