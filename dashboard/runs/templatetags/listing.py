"""``{% sort_link listing "energy" "Energy" %}``: a column header that sorts the runs list, keeping filters."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.utils.html import format_html

from dashboard.runs.listing import Listing

register = template.Library()


@register.simple_tag
def sort_link(listing: Listing, key: str, label: str) -> str:
    current = listing.sort.removeprefix("-")
    descending = listing.sort.startswith("-")
    # Numbers read best largest-first, so the first click sorts descending.
    target = key if current == key and descending else f"-{key}"
    query = urlencode({"sort": target, "project": listing.project, "tag": listing.tag, "status": listing.status})
    arrow = (" ▼" if descending else " ▲") if current == key else ""
    return format_html('<a href="?{}" data-sort="{}">{}{}</a>', query, key, label, arrow)
