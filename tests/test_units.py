"""Byte budgets and FLOP/s rates: exact parsing, one clear error for anything else."""

from fractions import Fraction

import pytest

from symbolic.errors import SymbolicError
from symbolic.units import format_bytes, parse_bytes, parse_rate


@pytest.mark.parametrize(
    "text, expected",
    [
        ("80GiB", 80 * 2**30),
        ("141GB", 141 * 10**9),
        ("1.5TB", 1_500_000_000_000),
        ("512MiB", 512 * 2**20),
        ("1000", 1000),
        ("64 KiB", 65536),
        ("2.5GiB", 5 * 2**29),
    ],
)
def test_budgets(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["80XB", "80gib", "eighty GiB", "-1GB", "0GB", "1e3GB", "", "80 GiB extra"])
def test_bad_budgets_name_the_field_and_units(text):
    with pytest.raises(SymbolicError) as err:
        parse_bytes(text, "--budget")
    assert err.value.field == "--budget"


def test_unknown_unit_lists_allowed_and_suggests():
    with pytest.raises(SymbolicError, match="did you mean GiB"):
        parse_bytes("80gib")


def test_format_shows_both_units():
    assert format_bytes(80 * 2**30) == "80.00 GiB (85.90 GB)"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("312e12", 312 * 10**12),
        ("312T", 312 * 10**12),
        ("989.5TFLOP/s", Fraction(9895, 10) * 10**12),
        ("2P", 2 * 10**15),
    ],
)
def test_rates(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["fast", "312X", "0", "-5T"])
def test_bad_rates(text):
    with pytest.raises(SymbolicError):
        parse_rate(text)
