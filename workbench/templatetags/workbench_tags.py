from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    """`{{ metrics|get_item:"recall@10" }}`: keys that are not identifiers."""
    return mapping.get(key) if hasattr(mapping, "get") else None
