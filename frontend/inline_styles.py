"""Stylesheets written into a page instead of linked, for the pages whose first paint must not wait for them.

A linked stylesheet blocks the page's first paint until its response is in; on a busy machine that is the
longest wait before the labelling page can show its first image (benchmarks.cine_open). The page's own few
kilobytes of CSS written into a `<style>` element let the browser lay out and paint as soon as the HTML is in.
The Content Security Policy still allows no inline style: the response allows this one element by the SHA-256
of its text (django-csp's per-response update), so nothing injected into the page could add a style.
"""

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.contrib.staticfiles import finders
from django.http import HttpResponseBase


@dataclass(frozen=True)
class InlineStyles:
    css: str
    source: str  # the CSP source that allows exactly this text in a <style> element

    def allow(self, response: HttpResponseBase) -> HttpResponseBase:
        """Let `response`'s Content Security Policy allow this style element (and linked styles of this site)."""
        response._csp_update = {"style-src": ["'self'", self.source]}  # type: ignore[attr-defined]
        return response


def inline_styles(*names: str) -> InlineStyles:
    """Return the static stylesheets `names` (e.g. "frontend/lumen.css"), joined in that order, with their hash.

    Read again only when a file changed (its modification time), so an edit shows at the next page as a linked
    file would."""
    paths = []
    for name in names:
        found = finders.find(name)
        if not found:
            raise FileNotFoundError(f"no static stylesheet {name!r} to write into the page")
        path = Path(found if isinstance(found, str) else found[0])
        paths.append((path, path.stat().st_mtime_ns))
    return _joined(tuple(paths))


@lru_cache(maxsize=32)
def _joined(paths: tuple[tuple[Path, int], ...]) -> InlineStyles:
    css = "\n".join(path.read_text(encoding="utf-8") for path, _ in paths)
    if "</" in css:
        raise ValueError("a stylesheet written into a page must not contain '</' (it would end the <style> element)")
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return InlineStyles(css=css, source=f"'sha256-{digest}'")
