"""The case page's clock text: a few minutes over (or left) never reads 0.0 工时."""
from dashboards._case import hours_text, one_decimal


def test_a_few_minutes_read_less_than_a_tenth_and_hours_one_decimal():
    assert one_decimal(2 / 60) == "<0.1" and one_decimal(-2 / 60) == "<0.1"
    assert one_decimal(0.05) == "0.1" and one_decimal(-5.46) == "5.5" and one_decimal(0) == "0.0"
    assert hours_text(-2 / 60) == "超 <0.1 工时"
    assert hours_text(3.26) == "剩 3.3 工时"
    assert hours_text(None) == "—"
