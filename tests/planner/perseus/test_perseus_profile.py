"""Profile CSV parsing and validation: every bad input names what is wrong and where."""

from __future__ import annotations

import pytest

from planner.perseus import ProblemTooLargeError, Profile, ProfileError, parse_profile

GOOD = """stage,instruction,frequency,time,energy
0,forward,1410,0.05,20.0
0,backward,1410,0.10,40.0
0,forward,1200,0.06,18.0
0,backward,1200,0.12,36.0
1,forward,1410,0.05,20.0
1,backward,1410,0.10,40.0
1,forward,1200,0.06,18.0
1,backward,1200,0.12,36.0
"""


def _replace_line(text: str, line: int, new: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


def test_valid_profile_is_parsed_with_rows_in_csv_order() -> None:
    profile = parse_profile(GOOD)
    assert profile.num_stages == 2
    assert profile.frequencies_mhz == (1410, 1200)
    entry = profile.get(1, "backward")
    assert entry.freq_mhz == (1410, 1200)
    assert entry.time_s == (0.10, 0.12)
    assert entry.at(1200) == (0.12, 36.0)


def test_bytes_with_bom_extra_columns_and_crlf_are_accepted() -> None:
    text = GOOD.replace("stage,instruction,frequency,time,energy", "rank,stage,instruction,frequency,time,energy")
    lines = text.splitlines()
    body = [lines[0]] + [f"{i},{line}" for i, line in enumerate(lines[1:])]
    data = ("\ufeff" + "\r\n".join(body) + "\r\n").encode()
    assert parse_profile(data).num_stages == 2


def test_the_gpt3_fixture_profile_is_valid(gpt3_profile: Profile) -> None:
    assert gpt3_profile.num_stages == 8
    assert len(gpt3_profile.frequencies_mhz) == 38
    assert gpt3_profile.max_freq_mhz == 1410


def test_profile_to_csv_round_trips(gpt3_profile: Profile) -> None:
    again = parse_profile(gpt3_profile.to_csv())
    assert again.entries == gpt3_profile.entries
    assert again.digest() == gpt3_profile.digest()


def test_missing_column_is_named() -> None:
    text = GOOD.replace("energy", "joules", 1)
    with pytest.raises(ProfileError, match="column 'energy'") as info:
        parse_profile(text)
    assert info.value.column == "energy"
    assert info.value.row == 1


def test_empty_file_is_rejected() -> None:
    with pytest.raises(ProfileError, match="empty"):
        parse_profile("")


def test_row_with_wrong_field_count_names_the_line() -> None:
    with pytest.raises(ProfileError, match="line 3") as info:
        parse_profile(_replace_line(GOOD, 3, "0,backward,1410,0.10"))
    assert info.value.row == 3


def test_non_numeric_time_names_line_and_column() -> None:
    with pytest.raises(ProfileError, match=r"line 4, column 'time'.*'fast' is not a number"):
        parse_profile(_replace_line(GOOD, 4, "0,forward,1200,fast,18.0"))


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("0,forward,1200,0,18.0", "time"),
        ("0,forward,1200,-0.06,18.0", "time"),
        ("0,forward,1200,0.06,0", "energy"),
        ("0,forward,1200,0.06,-3", "energy"),
        ("0,forward,1200,nan,18.0", "time"),
        ("0,forward,1200,0.06,inf", "energy"),
        ("0,forward,-5,0.06,18.0", "frequency"),
        ("-1,forward,1200,0.06,18.0", "stage"),
        ("x,forward,1200,0.06,18.0", "stage"),
    ],
)
def test_non_positive_or_malformed_numbers_are_rejected(row: str, column: str) -> None:
    with pytest.raises(ProfileError, match=f"line 4, column '{column}'") as info:
        parse_profile(_replace_line(GOOD, 4, row))
    assert info.value.column == column


def test_unknown_instruction_is_named() -> None:
    with pytest.raises(ProfileError, match="unknown instruction 'recompute'"):
        parse_profile(_replace_line(GOOD, 4, "0,recompute,1200,0.06,18.0"))


def test_duplicate_row_names_both_lines() -> None:
    with pytest.raises(ProfileError, match=r"line 4: duplicate row for stage 0 forward at 1410 MHz \(first on line 2\)"):
        parse_profile(_replace_line(GOOD, 4, "0,forward,1410,0.06,18.0"))


def test_missing_stage_is_named() -> None:
    text = GOOD.replace("1,", "2,")
    with pytest.raises(ProfileError, match="stage 1: stage missing") as info:
        parse_profile(text)
    assert info.value.stage == 1


def test_missing_instruction_is_named() -> None:
    lines = [line for line in GOOD.splitlines() if not line.startswith("1,backward")]
    with pytest.raises(ProfileError, match="stage 1, instruction 'backward': instruction missing") as info:
        parse_profile("\n".join(lines))
    assert (info.value.stage, info.value.instruction) == (1, "backward")


def test_frequency_missing_on_one_stage_is_named() -> None:
    lines = [line for line in GOOD.splitlines() if line != "1,forward,1200,0.06,18.0"]
    with pytest.raises(ProfileError, match="stage 1, instruction 'forward': frequency 1200 MHz missing"):
        parse_profile("\n".join(lines))


def test_extra_frequency_on_one_stage_is_named() -> None:
    text = GOOD + "1,backward,900,0.2,30.0\n"
    with pytest.raises(ProfileError, match="stage 1, instruction 'backward': frequency 900 MHz is not profiled"):
        parse_profile(text)


def test_profile_larger_than_the_byte_limit_is_refused() -> None:
    with pytest.raises(ProblemTooLargeError, match="bytes"):
        parse_profile(GOOD, max_bytes=100)


def test_profile_with_too_many_rows_is_refused() -> None:
    with pytest.raises(ProblemTooLargeError, match="rows"):
        parse_profile(GOOD, max_rows=5)


def test_non_utf8_bytes_are_rejected() -> None:
    with pytest.raises(ProfileError, match="not UTF-8"):
        parse_profile(b"stage,instruction\xff\n")


def test_unbalanced_quotes_are_reported_as_a_profile_error() -> None:
    with pytest.raises(ProfileError):
        parse_profile(GOOD + '0,"forward,1000,0.1,1\n')
