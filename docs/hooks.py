"""mkdocs hook: component tables, the model zoo and plugin pages, generated at build time.

From what the environment building the docs has installed; nothing generated is
committed, so the pages never drift from the registry:

* ``<!-- geofm:components -->``: one table per kind, from ``geofm list --json``;
* ``<!-- geofm:model-zoo -->``: one row per backbone and weight set, from the metadata
  in ``geofm list --json`` (no import of any model);
* ``<!-- geofm:plugin-pages -->``: links to one generated page per plugin source
  (``plugins/<source>.md``) with every component's signature and documentation, from
  ONE ``geofm describe --all --json`` run; the pages join the nav section that holds
  ``plugins/index.md``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- geofm:components -->"
ZOO_MARKER = "<!-- geofm:model-zoo -->"
PLUGINS_MARKER = "<!-- geofm:plugin-pages -->"
PLUGIN_INDEX = "plugins/index.md"
KIND_TITLES = {
    "backbone": "Backbones", "neck": "Necks", "decoder": "Decoders", "head": "Heads",
    "loss": "Losses", "model_factory": "Model factories",
}

_cache: dict[str, list[dict[str, Any]]] = {}


def _geofm_json(*args: str) -> list[dict[str, Any]]:
    """The JSON a real ``geofm ARGS --json`` run prints (run once per build)."""
    if args not in _cache:
        done = subprocess.run(
            [sys.executable, "-m", "geofm_core.cli", *args, "--json"],
            capture_output=True, text=True, check=True,
        )
        _cache[args] = json.loads(done.stdout)
    return _cache[args]


def _components() -> list[dict[str, Any]]:
    """The registry's components, from ``geofm list --json``."""
    return _geofm_json("list")


def _described() -> list[dict[str, Any]]:
    """Every component's signature and documentation, from ``geofm describe --all``."""
    return _geofm_json("describe", "--all")


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


def _bands(bands: list[str]) -> str:
    if len(bands) <= 6:
        return ", ".join(bands)
    return f"{len(bands)}: {', '.join(bands[:3])}, ..."


def _parameters(value: int | None) -> str:
    if not value:
        return ""
    return f"{value / 1e6:.1f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"


def model_zoo(components: list[dict[str, Any]]) -> str:
    """Markdown: one row per backbone and weight set (a row per backbone without any)."""
    backbones = sorted((c for c in components if c["kind"] == "backbone"),
                       key=lambda c: c["name"])
    with_meta = [c for c in backbones if c.get("metadata")]
    rows = []
    for c in with_meta:
        meta = c["metadata"]
        own = _bands(meta["bands"]) or ("any" if meta["any_bands"] else "")
        config = f"`backbone: {c['name']}`"
        for w in meta["weights"] or [None]:
            rows.append("| " + " | ".join([
                f"`{c['name']}`",
                f"`{_cell(w['name'])}`" if w else "none",
                _cell(_bands(w["bands"]) if w and w["bands"] else own),
                ", ".join(w["modalities"] or meta["modalities"]) if w else
                ", ".join(meta["modalities"]),
                str(meta["patch_size"] or ""),
                _parameters(meta["parameters"]),
                _cell(w["license"] or "unknown") if w else "",
                config,
            ]) + " |")
    weights = sum(len(c["metadata"]["weights"]) for c in with_meta)
    parts = [f"*{len(with_meta)} backbones with {weights} weight sets, generated from the "
             "metadata in `geofm list --json` when this site was built.*\n"]
    if rows:
        parts.append("| backbone | weights | bands | modalities | patch | parameters | "
                     "licence | config |\n|---|---|---|---|---|---|---|---|")
        parts.extend(rows)
    missing = [c["name"] for c in backbones if not c.get("metadata")]
    if missing:
        parts.append(f"\nWithout metadata: {', '.join(f'`{n}`' for n in missing)}.")
    return "\n".join(parts) + "\n"


def plugin_pages(described: list[dict[str, Any]]) -> dict[str, str]:
    """Markdown of one page per source: each component's signature and documentation."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for entry in described:
        by_source.setdefault(entry["source"], []).append(entry)
    pages = {}
    for source, entries in sorted(by_source.items()):
        first = entries[0]
        lines = [f"# Plugin `{source}`\n",
                 f"*{len(entries)} components from {first.get('distribution', '')} "
                 f"{first.get('version', '')}, generated from `geofm describe --all` when "
                 "this site was built.*\n"]
        for entry in entries:
            lines.append(f"## {entry['kind']} `{entry['name']}`\n")
            if entry.get("description"):
                lines.append(_cell(entry["description"]) + "\n")
            if entry.get("error"):
                lines.append(f"Cannot be described here: `{_cell(entry['error'])}`\n")
                continue
            lines.append(f"```python\n{entry['name']}{entry.get('signature', '')}\n```\n")
            if entry.get("doc"):
                lines.append(f"```text\n{entry['doc']}\n```\n")
        pages[f"plugins/{source}.md"] = "\n".join(lines)
    return pages


def _plugin_links() -> str:
    links = [f"- [`{Path(uri).stem}`]({Path(uri).name})" for uri in plugin_pages(_described())]
    return "\n".join(links) + "\n"


def on_files(files: Any, config: Any) -> Any:
    """Add the generated plugin pages."""
    from mkdocs.structure.files import File, InclusionLevel

    for uri, content in plugin_pages(_described()).items():
        # on_nav puts them in the nav, after mkdocs' check for pages left out of it
        files.append(File.generated(config, uri, content=content,
                                    inclusion=InclusionLevel.NOT_IN_NAV))
    return files


def on_nav(nav: Any, config: Any, files: Any) -> Any:
    """Put the generated plugin pages in the nav section that holds plugins/index.md."""
    from mkdocs.structure.nav import Section
    from mkdocs.structure.pages import Page

    def visit(items: list[Any]) -> Section | None:
        for item in items:
            if isinstance(item, Section):
                if any(getattr(c, "file", None) is not None and c.file.src_uri == PLUGIN_INDEX
                       for c in item.children):
                    return item
                found = visit(item.children)
                if found is not None:
                    return found
        return None

    section = visit(nav.items)
    if section is None:
        return nav
    for uri in plugin_pages(_described()):
        page = Page(f"Plugin {Path(uri).stem}", files.get_file_from_path(uri), config)
        page.parent = section
        section.children.append(page)
        nav.pages.append(page)
    return nav


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the markers with the generated tables."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, component_tables())
    if ZOO_MARKER in markdown:
        markdown = markdown.replace(ZOO_MARKER, model_zoo(_components()))
    if PLUGINS_MARKER in markdown:
        markdown = markdown.replace(PLUGINS_MARKER, _plugin_links())
    return markdown
