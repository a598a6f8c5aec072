"""``{% statement_choices as choices %}``: what the bug page's "Rewrite statement" form offers."""
from django import template

register = template.Library()


@register.simple_tag
def statement_choices() -> dict:
    from episodes.models import Bug, LLMEndpoint

    return {"endpoints": list(LLMEndpoint.objects.only("name", "model")), "styles": Bug.StatementStyle.choices}
