"""Normalising emails, Japanese phone numbers and names."""

import re

import pytest

from helpdesk import normalize


@pytest.mark.parametrize("raw", [
    "03-1234-5678", "０３－１２３４－５６７８", "+81312345678", "+81 (0)3 1234 5678",
    "03‐1234‐5678", "03ー1234ー5678", "(03)1234-5678", "0081312345678", " 03 1234 5678 ",
])
def test_phone_spellings_are_one_number(raw: str) -> None:
    assert normalize.phone(raw, "JP") == "+81312345678"


@pytest.mark.parametrize("raw", ["anonymous", "非通知", "", None, "Restricted", "unknown",
                                 "abc", "12", "+0000"])
def test_withheld_or_invalid_numbers_stay_unmatched(raw: str | None) -> None:
    assert normalize.phone(raw, "JP") is None


def test_foreign_numbers_keep_their_country() -> None:
    assert normalize.phone("+1 415 555 0100", "JP") == "+14155550100"


def test_mobile_with_katakana_long_vowel_dashes() -> None:
    assert normalize.phone("０９０ー１２３４ー５６７８", "JP") == "+819012345678"


def test_email_is_folded() -> None:
    assert normalize.email(" Taro@EXAMPLE.jp ") == "taro@example.jp"
    assert normalize.email("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ") == "taro@example.jp"
    assert normalize.email("not an email") is None


def test_names_fold_width_and_spaces() -> None:
    assert normalize.name("ﾔﾏﾀﾞ　 ﾀﾛｳ") == "ヤマダ タロウ"
    assert normalize.name("   ") is None


def test_display_format() -> None:
    assert normalize.phone_display("+81312345678") == "03-1234-5678"


@pytest.mark.parametrize("e164", ["+819012345678", "+81312345678", "+81120123456", "+442071234567"])
def test_search_digits_are_those_of_the_displayed_form(e164: str) -> None:
    """The digits people type: national inside the region, with the country code outside."""
    assert normalize.phone_search_digits(e164) == re.sub(r"\D", "", normalize.phone_display(e164))


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("4912347114711", "JP", "+4912347114711"),  # Zammad's CTI: E.164 digits without "+"
    ("81312345678", "JP", "+81312345678"),
    ("0312345678", "JP", "+81312345678"),  # the trunk prefix: a national number
    ("03-1234-5678", "JP", "+81312345678"),
    ("555-625-1199", "US", "+15556251199"),  # the US writes no trunk prefix: national
    ("12025550123", "US", "+12025550123"),
])
def test_digits_without_plus_are_international_unless_they_read_as_national(
        raw: str, region: str, expected: str) -> None:
    assert normalize.phone(raw, region) == expected


@pytest.mark.parametrize(("family", "given", "country", "expected"), [
    ("Norman", "Bob", "US", "Bob Norman"), ("本田", "太郎", "JP", "本田 太郎"),
    ("本田", "太郎", None, "本田 太郎"), ("Norman", "Bob", None, "Bob Norman"),
    ("①㈱髙﨑（）！ｶﾅ", None, "JP", "①㈱髙﨑（）！ｶﾅ"), (None, None, "US", None)])
def test_names_are_joined_in_the_order_their_country_writes_them(
        family: str | None, given: str | None, country: str | None, expected: str | None) -> None:
    assert normalize.person_name(family, given, country=country) == expected


def test_kept_text_is_only_trimmed() -> None:
    assert normalize.kept("  ①㈱髙﨑（）！ｶﾅ\u3000様 ") == "①㈱髙﨑（）！ｶﾅ\u3000様"
    assert normalize.kept("  ") is None and normalize.kept(None) is None
def test_phone_for_people_formats_stored_numbers_and_leaves_the_rest_as_stored() -> None:
    assert normalize.phone_for_people("+819010727576") == "090-1072-7576"
    assert normalize.phone_for_people("+14155552671") == "+1 415-555-2671"
    assert normalize.phone_for_people("anonymous") == "anonymous"
    assert normalize.phone_for_people("+81") == "+81"
    assert normalize.phone_for_people(None) == ""
