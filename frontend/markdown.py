"""Labelling instructions: Markdown a lead writes, rendered to HTML that cannot run script or load anything."""

from __future__ import annotations

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe

# What instructions may use: text structure, emphasis, lists, tables, code and links; no images, forms, frames,
# styles or event handlers (nh3 drops every attribute and tag not listed, and unsafe URL schemes).
TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "kbd", "dl", "dt", "dd",
}  # fmt: skip
ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}


def instructions_html(text: str) -> SafeString:
    """Return the Markdown `text` as sanitised HTML (links open in a new tab and carry no referrer)."""
    html = markdown.markdown(text or "", extensions=["tables", "fenced_code", "sane_lists"], output_format="html")
    cleaned = nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return mark_safe(cleaned)  # noqa: S308 — sanitised by nh3 just above
