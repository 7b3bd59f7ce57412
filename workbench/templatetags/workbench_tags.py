from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def get_item(mapping, key):
    """`{{ metrics|get_item:"recall@10" }}`: keys that are not identifiers."""
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter
def with_interval(metrics, name: str = "map"):
    """`{{ v.metrics.val|with_interval:"map" }}` → the value and its 95 % bootstrap interval
    (`training.metrics`), "–" when there is no value. The interval tells a real difference from noise."""
    if not hasattr(metrics, "get") or metrics.get(name) is None:
        return "–"
    value = metrics[name]
    interval = (metrics.get("ci") or {}).get(name)
    if not interval:
        return f"{value:.4f}"
    return format_html(
        '{} <span class="ci muted small" title="95 % bootstrap interval over {} groups">[{}, {}]</span>',
        f"{value:.4f}",
        metrics.get("n_groups", metrics.get("components", "?")),
        f"{interval[0]:.3f}",
        f"{interval[1]:.3f}",
    )


@register.filter
def percent(value, digits: int = 1):
    """0.4567 → "45.7"; "–" for a missing value (NaN or None)."""
    if value is None or not isinstance(value, int | float) or value != value:
        return "–"
    return f"{100 * value:.{digits}f}"
