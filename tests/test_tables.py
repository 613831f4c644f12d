"""Result tables (``inr_utils.tables``): exact CSV and Markdown text for known rows."""

from __future__ import annotations

import pytest

from inr_utils.tables import all_columns, to_csv, to_markdown

ROWS = [{"name": "relu|pe", "params": 1234567, "psnr": 31.234567, "ssim": 0.91, "note": None},
        {"name": "siren", "params": 198915, "psnr": float("nan"), "ssim": 0.5, "note": "diverged"}]


def test_to_csv_exact():
    assert to_csv(ROWS, ["name", "params", "psnr", "ssim", "note"]) == (
        "name,params,psnr,ssim,note\n"
        "relu|pe,1234567,31.2346,0.91,\n"
        "siren,198915,,0.5,diverged\n")


def test_to_markdown_exact():
    text = to_markdown(ROWS, ["name", "params", "psnr", "ssim", "note"], formats={"psnr": "{:.2f}"},
                       headers={"psnr": "PSNR (dB)"})
    assert text == ("| name | params | PSNR (dB) | ssim | note |\n"
                    "|---|---:|---:|---:|---|\n"
                    "| relu\\|pe | 1,234,567 | 31.23 | 0.91 | n/a |\n"
                    "| siren | 198,915 | n/a | 0.5 | diverged |\n")


def test_default_columns_are_every_key_in_first_seen_order():
    rows = [{"b": 1, "a": 2.5}, {"c": "x", "a": 1.0}]
    assert all_columns(rows) == ["b", "a", "c"]
    assert to_csv(rows) == "b,a,c\n1,2.5,\n,1,x\n"
    assert to_markdown(rows).splitlines()[:2] == ["| b | a | c |", "|---:|---:|---|"]


def test_a_bare_format_spec_is_refused():
    # ".2f" (no replacement field) would be written as the cell's text instead of the number
    with pytest.raises(ValueError, match="replacement field"):
        to_markdown(ROWS, ["psnr"], formats={"psnr": ".2f"})
