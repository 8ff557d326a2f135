"""The Lab tab: the pages `archzoo lab` writes (an index of verdicts and one markdown page per experiment,
with its PNG figures) read from a lab output folder and rendered to HTML for the page.

Clients name a page by an id from the server's own listing (the page's file name without ``.md``), never
by path; a page's figures are read only from inside the lab folder and sent inline as data URLs; links to
other pages become links inside the tab, links to other files of the folder (raw JSON, cached cells)
become plain text naming the file, and raw HTML in the markdown is shown as text, never run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from archzoo.errors import UserError
from archzoo.serve import limits
from archzoo.serve.pictures import png_url

PAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
INDEX = "index"
HINT = "run `archzoo lab all` (or `archzoo lab run NAME --quick`) and start the server with --lab runs/lab"


class LabPages:
    """The lab report under ``root`` (None: none served)."""

    def __init__(self, root: Path | None):
        self.root = root

    def ids(self) -> list[str]:
        """The pages, the index first, then the experiments in name order."""
        if self.root is None or not self.root.is_dir():
            return []
        found = sorted(p.stem for p in self.root.glob("*.md") if p.is_file() and PAGE_ID.match(p.stem))
        return ([INDEX] if INDEX in found else []) + [name for name in found if name != INDEX]

    def listing(self) -> dict[str, Any]:
        ids = self.ids()
        hint = None if ids else (f"no lab report under {self.root}; {HINT}" if self.root is not None else
                                 f"this server serves no lab report; {HINT}")
        return {"root": None if self.root is None else str(self.root),
                "pages": [{"id": i, "title": self.title(i)} for i in ids], "hint": hint}

    def source(self, page_id: object) -> str:
        """The markdown of a listed page."""
        if not isinstance(page_id, str) or page_id not in self.ids():
            raise UserError(f"no lab page {page_id!r} on this server; choose one from the list")
        assert self.root is not None
        path = self.root / f"{page_id}.md"
        size = path.stat().st_size
        if size > limits.MAX_LAB_PAGE_BYTES:
            raise UserError(f"the lab page {page_id} is {size / 2**20:.1f} MiB, more than "
                            f"{limits.MAX_LAB_PAGE_BYTES >> 20} MiB; open {path} itself")
        return path.read_text(encoding="utf-8", errors="replace")

    def title(self, page_id: str) -> str:
        """The page's first heading, without its '#'s (the id when it has none)."""
        try:
            text = self.source(page_id)
        except (UserError, OSError):
            return page_id
        first = next((line for line in text.splitlines() if line.startswith("#")), "")
        return first.lstrip("#").strip() or page_id

    def figure(self, target: str) -> str | None:
        """A data URL of the PNG ``target`` (relative to the lab folder) when it is a file inside the folder
        of at most MAX_LAB_FIGURE_BYTES; None otherwise."""
        assert self.root is not None
        root = self.root.resolve()
        path = (root / target).resolve()
        if (path.suffix.lower() != ".png" or not path.is_relative_to(root) or not path.is_file()
                or path.stat().st_size > limits.MAX_LAB_FIGURE_BYTES):
            return None
        return png_url(path.read_bytes())

    def page(self, page_id: object) -> dict[str, Any]:
        """A listed page as HTML: {"id", "title", "html", "figures", "missing"} (figures inlined, links
        rewritten as the module says)."""
        from markdown_it import MarkdownIt

        text = self.source(page_id)
        assert isinstance(page_id, str)
        ids = set(self.ids())
        md = MarkdownIt("commonmark", {"html": False}).enable("table")
        tokens = md.parse(text)
        figures, missing = 0, []
        for token in tokens:
            for child in token.children or []:
                if child.type == "link_open":
                    href = str(child.attrGet("href") or "")
                    if href.startswith(("http://", "https://")):
                        child.attrSet("target", "_blank")
                        child.attrSet("rel", "noopener noreferrer")
                    elif href.endswith(".md") and href[:-3] in ids:
                        child.attrSet("href", f"#lab/{href[:-3]}")
                        child.attrSet("data-lab-page", href[:-3])
                    else:  # another file of the lab folder: named, not served
                        child.attrs.pop("href", None)
                        child.attrSet("class", "lab-file")
                        child.attrSet("title", f"{href} in the lab folder ({self.root})")
                elif child.type == "image":
                    src = str(child.attrGet("src") or "")
                    url = self.figure(src)
                    if url is None:
                        missing.append(src)
                        child.attrs.pop("src", None)
                    else:
                        child.attrSet("src", url)
                        figures += 1
        html = md.renderer.render(tokens, md.options, {})
        return {"id": page_id, "title": self.title(page_id), "html": html, "figures": figures, "missing": missing}
