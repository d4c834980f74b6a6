"""Exceptions raised by the Perseus planner.

Every problem with user input is a :class:`PlannerError` (a ``ValueError``), so a caller
(the CLI, a Django view, a Celery task) can catch one type and show its message. The
message always names what is wrong and where: the CSV row and column, the stage and
instruction, or the limit that was exceeded.
"""

from __future__ import annotations


class PlannerError(ValueError):
    """Base class of every error the planner raises for bad input or an unsolvable problem."""


class ProfileError(PlannerError):
    """The profile CSV is malformed or inconsistent.

    Attributes:
        row: 1-based line number in the CSV (the header is line 1), when one row is at fault.
        column: The column at fault, when there is one.
        stage: The pipeline stage at fault, when there is one.
        instruction: The instruction (``forward``/``backward``) at fault, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        stage: int | None = None,
        instruction: str | None = None,
    ) -> None:
        where = []
        if row is not None:
            where.append(f"line {row}")
        if column is not None:
            where.append(f"column {column!r}")
        if stage is not None:
            where.append(f"stage {stage}")
        if instruction is not None:
            where.append(f"instruction {instruction!r}")
        prefix = f"profile {', '.join(where)}: " if where else "profile: "
        super().__init__(prefix + message)
        self.row = row
        self.column = column
        self.stage = stage
        self.instruction = instruction


class ProblemTooLargeError(PlannerError):
    """The profile or the planning problem exceeds a configured size limit."""


class StragglerError(PlannerError):
    """No plan can meet the straggler's iteration time."""


class FrontierFormatError(PlannerError):
    """A serialised frontier could not be read back."""
