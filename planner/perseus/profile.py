"""The per-computation profile: time and energy of every instruction at every frequency.

Perseus plans from an offline profile of one pipeline. For every stage ``s`` (one GPU, or one
tensor-parallel group) and every instruction (``forward`` or ``backward`` of one microbatch) the
profiler locks the GPU's SM clock to each supported frequency in turn and measures the mean time and
energy of one execution. The result is the CSV the Zeus pipeline frequency optimizer consumes::

    stage,instruction,frequency,time,energy
    0,forward,1410,0.0501616,23.805
    0,backward,1410,0.0929537,44.584
    ...

``frequency`` is in MHz, ``time`` in seconds, ``energy`` in joules. Extra columns (``rank``,
``pp_rank``, ...) are allowed and ignored. This module parses and validates that CSV; every problem
raises :class:`~planner.perseus.errors.ProfileError` naming the line, column, stage or
instruction at fault.

Rules a profile must follow:

* stages are ``0 .. S-1`` with none missing, and every stage profiles both instructions;
* every (stage, instruction) is profiled at the same set of frequencies, each exactly once;
* times and energies are finite and strictly positive.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from planner.perseus.errors import ProblemTooLargeError, ProfileError

INSTRUCTIONS: tuple[str, ...] = ("forward", "backward")
"""Instruction names, in the order the planner processes them."""

REQUIRED_COLUMNS: tuple[str, ...] = ("stage", "instruction", "frequency", "time", "energy")

MAX_PROFILE_BYTES = 16 * 1024 * 1024
"""Largest profile accepted, in bytes (a real 8-stage profile is about 33 kB)."""

MAX_PROFILE_ROWS = 200_000
"""Largest number of data rows accepted."""

MAX_STAGES = 1024
"""Largest number of pipeline stages accepted."""


@dataclass(frozen=True)
class InstructionProfile:
    """Profiled time and energy of one instruction on one stage, one entry per frequency.

    Entries keep the order of the CSV rows (the order matters to lowtime's tie-breaks).
    """

    stage: int
    instruction: str
    freq_mhz: tuple[int, ...]
    time_s: tuple[float, ...]
    energy_j: tuple[float, ...]
    lines: tuple[int, ...] = field(compare=False, repr=False)

    def at(self, freq_mhz: int) -> tuple[float, float]:
        """Return ``(time_s, energy_j)`` at a profiled frequency."""
        try:
            i = self.freq_mhz.index(freq_mhz)
        except ValueError:
            raise ProfileError(
                f"frequency {freq_mhz} MHz was not profiled", stage=self.stage, instruction=self.instruction
            ) from None
        return self.time_s[i], self.energy_j[i]

    @property
    def max_freq_mhz(self) -> int:
        """The highest profiled frequency."""
        return max(self.freq_mhz)


@dataclass(frozen=True)
class Profile:
    """A validated profile of a pipeline with ``num_stages`` stages."""

    num_stages: int
    entries: dict[tuple[int, str], InstructionProfile]
    frequencies_mhz: tuple[int, ...]
    """The profiled frequencies, highest first (the same on every stage)."""

    def get(self, stage: int, instruction: str) -> InstructionProfile:
        """Return the profile of ``instruction`` on ``stage``."""
        try:
            return self.entries[(stage, instruction)]
        except KeyError:
            raise ProfileError("not in the profile", stage=stage, instruction=instruction) from None

    @property
    def max_freq_mhz(self) -> int:
        """The highest profiled frequency."""
        return self.frequencies_mhz[0]

    def digest(self) -> str:
        """A SHA-256 of the profile's content (rows in canonical order), for caching results."""
        h = hashlib.sha256()
        for key in sorted(self.entries):
            entry = self.entries[key]
            for f, t, e in zip(entry.freq_mhz, entry.time_s, entry.energy_j, strict=True):
                h.update(f"{key[0]},{key[1]},{f},{t!r},{e!r}\n".encode())
        return h.hexdigest()

    def to_csv(self) -> str:
        """Write the profile back as a Perseus CSV (stage-major, instructions in CSV order)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(REQUIRED_COLUMNS)
        for stage in range(self.num_stages):
            for instruction in INSTRUCTIONS:
                entry = self.entries[(stage, instruction)]
                for f, t, e in zip(entry.freq_mhz, entry.time_s, entry.energy_j, strict=True):
                    writer.writerow((stage, instruction, f, repr(t), repr(e)))
        return out.getvalue()


def _parse_int(text: str, *, line: int, column: str) -> int:
    value = text.strip()
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        raise ProfileError(f"{value!r} is not an integer", row=line, column=column) from None
    if not math.isfinite(number) or not number.is_integer():
        raise ProfileError(f"{value!r} is not an integer", row=line, column=column)
    return int(number)


def _parse_positive_float(text: str, *, line: int, column: str, unit: str) -> float:
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        raise ProfileError(f"{value!r} is not a number", row=line, column=column) from None
    if not math.isfinite(number):
        raise ProfileError(f"{value!r} is not a finite number", row=line, column=column)
    if number <= 0.0:
        raise ProfileError(f"{unit} must be positive, got {value}", row=line, column=column)
    return number


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProfileError(f"not UTF-8 text (byte {e.start})") from None


def parse_profile(
    data: str | bytes,
    *,
    max_bytes: int = MAX_PROFILE_BYTES,
    max_rows: int = MAX_PROFILE_ROWS,
) -> Profile:
    """Parse and validate a Perseus profile CSV given as text or bytes.

    Raises:
        ProfileError: The CSV is malformed or inconsistent; the message names the line, column,
            stage or instruction.
        ProblemTooLargeError: The profile is larger than ``max_bytes`` or ``max_rows``.
    """
    size = len(data.encode()) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise ProblemTooLargeError(f"profile is {size} bytes, the limit is {max_bytes} bytes")
    text = _decode(data)
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise ProfileError(f"malformed CSV: {e}") from None
    return _validate_rows(rows, max_rows=max_rows)


def load_profile(path: str | Path, **limits: int) -> Profile:
    """Read and validate a profile CSV file (see :func:`parse_profile`)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise ProfileError(f"cannot read {str(p)!r}: {e.strerror}") from None
    max_bytes = limits.get("max_bytes", MAX_PROFILE_BYTES)
    if size > max_bytes:
        raise ProblemTooLargeError(f"profile is {size} bytes, the limit is {max_bytes} bytes")
    return parse_profile(p.read_bytes(), **limits)


def _validate_rows(rows: list[list[str]], *, max_rows: int) -> Profile:
    # Skip leading blank lines; the first non-blank line is the header.
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(cell.strip() for cell in r)]
    if not numbered:
        raise ProfileError("the file is empty; expected a header " + ",".join(REQUIRED_COLUMNS))
    header_line, header = numbered[0]
    names = [h.strip().lower() for h in header]
    for name in names:
        if names.count(name) > 1:
            raise ProfileError("duplicate column in the header", row=header_line, column=name)
    for name in REQUIRED_COLUMNS:
        if name not in names:
            raise ProfileError(
                f"missing column; the header must contain {', '.join(REQUIRED_COLUMNS)}",
                row=header_line,
                column=name,
            )
    if len(numbered) - 1 > max_rows:
        raise ProblemTooLargeError(f"profile has {len(numbered) - 1} rows, the limit is {max_rows}")
    idx = {name: names.index(name) for name in REQUIRED_COLUMNS}

    collected: dict[tuple[int, str], list[tuple[int, float, float, int]]] = {}
    seen: dict[tuple[int, str, int], int] = {}
    for line, row in numbered[1:]:
        if len(row) != len(names):
            raise ProfileError(f"expected {len(names)} fields, found {len(row)}", row=line)
        stage = _parse_int(row[idx["stage"]], line=line, column="stage")
        if stage < 0:
            raise ProfileError(f"stage must be 0 or more, got {stage}", row=line, column="stage")
        if stage >= MAX_STAGES:
            raise ProblemTooLargeError(f"profile line {line}: stage {stage} exceeds the limit of {MAX_STAGES} stages")
        instruction = row[idx["instruction"]].strip().lower()
        if instruction not in INSTRUCTIONS:
            raise ProfileError(
                f"unknown instruction {row[idx['instruction']].strip()!r}; expected one of {', '.join(INSTRUCTIONS)}",
                row=line,
                column="instruction",
            )
        freq = _parse_int(row[idx["frequency"]], line=line, column="frequency")
        if freq <= 0:
            raise ProfileError(f"frequency must be positive MHz, got {freq}", row=line, column="frequency")
        time_s = _parse_positive_float(row[idx["time"]], line=line, column="time", unit="time")
        energy_j = _parse_positive_float(row[idx["energy"]], line=line, column="energy", unit="energy")
        key = (stage, instruction, freq)
        if key in seen:
            raise ProfileError(
                f"duplicate row for stage {stage} {instruction} at {freq} MHz (first on line {seen[key]})",
                row=line,
            )
        seen[key] = line
        collected.setdefault((stage, instruction), []).append((freq, time_s, energy_j, line))

    if not collected:
        raise ProfileError("no data rows after the header")
    num_stages = max(stage for stage, _ in collected) + 1
    for stage in range(num_stages):
        if not any((stage, inst) in collected for inst in INSTRUCTIONS):
            raise ProfileError(f"stage missing; stages must be numbered 0 to {num_stages - 1}", stage=stage)
        for inst in INSTRUCTIONS:
            if (stage, inst) not in collected:
                raise ProfileError("instruction missing from the profile", stage=stage, instruction=inst)

    reference_key = (0, INSTRUCTIONS[0])
    reference = {f for f, _, _, _ in collected[reference_key]}
    for (stage, inst), entries in sorted(collected.items()):
        freqs = {f for f, _, _, _ in entries}
        missing = sorted(reference - freqs, reverse=True)
        if missing:
            raise ProfileError(
                f"frequency {_list_mhz(missing)} missing (profiled for stage 0 forward)",
                stage=stage,
                instruction=inst,
            )
        extra = sorted(freqs - reference, reverse=True)
        if extra:
            raise ProfileError(
                f"frequency {_list_mhz(extra)} is not profiled for stage 0 forward",
                stage=stage,
                instruction=inst,
            )

    entries_out = {
        key: InstructionProfile(
            stage=key[0],
            instruction=key[1],
            freq_mhz=tuple(f for f, _, _, _ in entries),
            time_s=tuple(t for _, t, _, _ in entries),
            energy_j=tuple(e for _, _, e, _ in entries),
            lines=tuple(line for _, _, _, line in entries),
        )
        for key, entries in collected.items()
    }
    return Profile(
        num_stages=num_stages,
        entries=entries_out,
        frequencies_mhz=tuple(sorted(reference, reverse=True)),
    )


def _list_mhz(freqs: Iterable[int]) -> str:
    items = list(freqs)
    shown = ", ".join(str(f) for f in items[:5])
    more = f" and {len(items) - 5} more" if len(items) > 5 else ""
    return f"{shown}{more} MHz"
