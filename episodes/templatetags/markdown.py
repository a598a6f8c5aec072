"""``{{ text|markdown }}``: problem statements and notes as safe Markdown.

CommonMark (markdown-it-py) with raw HTML off — any ``<tag>`` in the text is shown as text,
never rendered — and links limited to http(s) and mailto (markdown-it's own validation refuses
``javascript:`` and ``data:`` URLs). Code fences and backticks render as code, which is what
issue texts are full of.
"""
from django import template
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

register = template.Library()
_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


@register.filter(name="markdown")
def markdown(text) -> str:
    return mark_safe(_md.render(str(text or "")))
