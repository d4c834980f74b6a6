"""Perseus profile CSVs on the node: checking one before it is sent, and merging per-stage files.

Each rank's :class:`wattwise_agent.profiling.StageProfiler` writes its own stage's rows; the planner wants one
file with every stage, each profiled at the same clocks. :func:`merge_profile_csvs` joins per-stage
files and keeps the clocks every stage and instruction has (early stops end stages at different
clocks). :func:`check_profile_csv` checks a whole-pipeline profile against the rules the planner's
parser applies (``planner.perseus.profile``): the columns, numbers, duplicates, stages ``0..S-1``
each with both instructions, the same clocks everywhere, and the planner's size limits. The agent
imports nothing of the app, so these rules are restated here; the app parses every profile it
receives with its planner again, and rejects, with the planner's reason, anything this check missed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

INSTRUCTIONS = ("forward", "backward")
REQUIRED_COLUMNS = ("stage", "instruction", "frequency", "time", "energy")
# The planner's limits (planner.perseus.profile): the app refuses a profile above them.
MAX_PROFILE_BYTES = 16 * 1024 * 1024
MAX_PROFILE_ROWS = 200_000
MAX_STAGES = 1024

Row = tuple[int, str, int, float, float]  # stage, instruction, freq_mhz, time_s, energy_j


class ProfileCsvError(ValueError):
    """A profile CSV that the planner would refuse; the text says where and why."""


@dataclass(frozen=True)
class ProfileCheck:
    """What a valid profile holds."""

    num_stages: int
    frequencies_mhz: tuple[int, ...]  # highest first
    rows: int


def check_profile_csv(text: str | bytes) -> ProfileCheck:
    """Check a whole-pipeline profile as the planner would; raise ProfileCsvError naming where and why."""
    rows = parse_rows(text)
    freqs: dict[tuple[int, str], set[int]] = {}
    for stage, instruction, freq, _, _ in rows:
        freqs.setdefault((stage, instruction), set()).add(freq)
    num_stages = max(stage for stage, _ in freqs) + 1
    for stage in range(num_stages):
        if not any((stage, instruction) in freqs for instruction in INSTRUCTIONS):
            raise ProfileCsvError(f"stage {stage}: stage missing; stages must be numbered 0 to {num_stages - 1}")
    reference = freqs.get((0, "forward"))
    for stage in range(num_stages):
        for instruction in INSTRUCTIONS:
            have = freqs.get((stage, instruction))
            if have is None:
                raise ProfileCsvError(f"stage {stage}: no {instruction} rows (every stage needs forward and "
                                      "backward)")
            if have != reference:
                assert reference is not None
                differences = [f"{what}: {', '.join(map(str, sorted(clocks, reverse=True)))} MHz"
                               for what, clocks in (("missing", reference - have), ("extra", have - reference))
                               if clocks]
                raise ProfileCsvError(f"stage {stage} {instruction}: profiled at other clocks than stage 0 forward "
                                      f"({'; '.join(differences)})")
    assert reference is not None
    return ProfileCheck(num_stages, tuple(sorted(reference, reverse=True)), len(rows))


def parse_rows(text: str | bytes, *, source: str = "profile") -> list[Row]:
    """The rows of a profile CSV (any stages; extra columns ignored), with types and values checked."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ProfileCsvError(f"{source}: not UTF-8 text") from None
    if len(text.encode()) > MAX_PROFILE_BYTES:
        raise ProfileCsvError(f"{source}: larger than {MAX_PROFILE_BYTES} bytes")
    try:
        lines = [(n + 1, r) for n, r in enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
                 if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise ProfileCsvError(f"{source}: malformed CSV: {exc}") from None
    if not lines:
        raise ProfileCsvError(f"{source}: empty; expected the header {','.join(REQUIRED_COLUMNS)}")
    header = [h.strip().lower() for h in lines[0][1]]
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise ProfileCsvError(f"{source} line {lines[0][0]}: column(s) {', '.join(twice)} twice in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ProfileCsvError(f"{source} line {lines[0][0]}: missing column(s) {', '.join(missing)}; the header "
                              f"must contain {','.join(REQUIRED_COLUMNS)}")
    if len(lines) - 1 > MAX_PROFILE_ROWS:
        raise ProfileCsvError(f"{source}: more than {MAX_PROFILE_ROWS} rows")
    at = {c: header.index(c) for c in REQUIRED_COLUMNS}
    rows: list[Row] = []
    seen: set[tuple[int, str, int]] = set()
    for line, cells in lines[1:]:
        where = f"{source} line {line}"
        if len(cells) != len(header):
            raise ProfileCsvError(f"{where}: expected {len(header)} fields, found {len(cells)}")
        stage = _integer(cells[at["stage"]], where, "stage", minimum=0)
        if stage >= MAX_STAGES:
            raise ProfileCsvError(f"{where}: stage {stage} exceeds the planner's limit of {MAX_STAGES} stages")
        instruction = cells[at["instruction"]].strip().lower()
        if instruction not in INSTRUCTIONS:
            raise ProfileCsvError(f"{where}: unknown instruction {instruction!r}; expected forward or backward")
        freq = _integer(cells[at["frequency"]], where, "frequency", minimum=1)
        time_s = _positive(cells[at["time"]], where, "time")
        energy_j = _positive(cells[at["energy"]], where, "energy")
        if (stage, instruction, freq) in seen:
            raise ProfileCsvError(f"{where}: a second row for stage {stage} {instruction} at {freq} MHz")
        seen.add((stage, instruction, freq))
        rows.append((stage, instruction, freq, time_s, energy_j))
    if not rows:
        raise ProfileCsvError(f"{source}: no data rows after the header")
    return rows


def _integer(text: str, where: str, column: str, *, minimum: int) -> int:
    try:
        value = float(text.strip())
    except ValueError:
        raise ProfileCsvError(f"{where}: {column} {text.strip()!r} is not a number") from None
    if not math.isfinite(value) or not value.is_integer() or value < minimum:
        raise ProfileCsvError(f"{where}: {column} must be a whole number, at least {minimum}; got {text.strip()!r}")
    return int(value)


def _positive(text: str, where: str, column: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ProfileCsvError(f"{where}: {column} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ProfileCsvError(f"{where}: {column} {text.strip()!r} is not a finite number")
    if value <= 0:
        raise ProfileCsvError(f"{where}: {column} must be positive, got {text.strip()!r}")
    return value


@dataclass(frozen=True)
class MergedProfile:
    csv: str
    dropped_mhz: tuple[int, ...]  # clocks left out because not every stage and instruction had them


def merge_profile_csvs(texts: Sequence[str | bytes], *, sources: Sequence[str] | None = None) -> MergedProfile:
    """Join per-stage profile CSVs into one, keeping the clocks common to every stage and instruction."""
    if not texts:
        raise ProfileCsvError("no profile to merge")
    names = list(sources) if sources is not None else [f"profile {i + 1}" for i in range(len(texts))]
    rows: dict[tuple[int, str, int], tuple[float, float]] = {}
    origin: dict[tuple[int, str, int], str] = {}
    for text, source in zip(texts, names):
        for stage, instruction, freq, time_s, energy_j in parse_rows(text, source=source):
            key = (stage, instruction, freq)
            if key in rows:
                raise ProfileCsvError(f"stage {stage} {instruction} at {freq} MHz is in both {origin[key]} and {source}")
            rows[key] = (time_s, energy_j)
            origin[key] = source
    by_op: dict[tuple[int, str], set[int]] = {}
    for stage, instruction, freq in rows:
        by_op.setdefault((stage, instruction), set()).add(freq)
    common = set.intersection(*by_op.values())
    if not common:
        raise ProfileCsvError("the profiles share no clock: every stage must be profiled at some common clocks")
    everything = set().union(*by_op.values())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REQUIRED_COLUMNS)
    for stage, instruction in sorted(by_op, key=lambda k: (k[0], INSTRUCTIONS.index(k[1]))):
        for freq in sorted(common, reverse=True):
            time_s, energy_j = rows[(stage, instruction, freq)]
            writer.writerow((stage, instruction, freq, repr(time_s), repr(energy_j)))
    return MergedProfile(out.getvalue(), tuple(sorted(everything - common, reverse=True)))
