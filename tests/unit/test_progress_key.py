"""The key of the citizen's 进度查询 (incidents.permissions): the last four digits of the phone given
at report, whatever its punctuation; no key (no query) without four digits on record."""
from __future__ import annotations

import pytest

from incidents.permissions import may_query_progress, progress_key


@pytest.mark.parametrize("phone, key", [
    ("13812345678", "5678"), ("138-1234-5678", "5678"), ("+86 138 1234 5678", "5678"),
    ("0571-8765 4321", "4321"), ("1234", "1234"), ("110", None), ("", None), (None, None), ("无", None)])
def test_the_key_is_the_last_four_digits_on_record(phone, key):
    assert progress_key(phone) == key


def test_only_the_exact_four_digits_open_a_case_and_no_phone_opens_none():
    assert may_query_progress("138-1234-5678", "5678")
    assert not may_query_progress("138-1234-5678", "678")
    assert not may_query_progress("138-1234-5678", " 5678")
    assert not may_query_progress("138-1234-5678", "")
    assert not may_query_progress("", "")
    assert not may_query_progress(None, "0000")
