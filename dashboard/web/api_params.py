"""What every router shares: the error bodies, bounded ids, epoch-ms bounds, safe text, and list pagination.

Every bound here keeps a nonsense value away from the database, where it would fail as an error (a
500) instead of a 400: ids past PostgreSQL's bigint, offsets past its range, NUL characters that
PostgreSQL refuses in text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from django.db.models import QuerySet, TextChoices
from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination
from ninja.params.functions import Path, Query
from pydantic import WithJsonSchema

# --- error bodies: what every operation answers besides 200 ---------------------------------------


class Error(Schema):
    """Every 4xx answer: a sentence saying what was wrong."""

    detail: str = Field(description="what was wrong, in words")


class FieldProblem(Schema):
    loc: list[str | int] = Field(description="where: the parameter's source and name, e.g. ['query', 'limit']")
    msg: str


class InvalidInput(Schema):
    """A 400 for parameters that do not parse or are out of range."""

    detail: str
    errors: list[FieldProblem] = Field(default_factory=list, description="one entry per bad parameter")


# --- parameters ---------------------------------------------------------------------------------------

MAX_ID = 2**63 - 1
# Epoch ms up to the year 2255: past any real reading, inside int64 and JavaScript's exact integers.
MAX_EPOCH_MS = 9_000_000_000_000
SAFE_TEXT = r"^[^\x00-\x1f\x7f]*$"  # no NUL or other control characters

MAX_PAGE_ITEMS = 500
MAX_OFFSET = 1_000_000_000

ProjectId = Annotated[int, Path(ge=1, le=MAX_ID, description="id of the project")]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="id of the run")]
RunGpuId = Annotated[int, Path(ge=1, le=MAX_ID, description="id of the GPU in the run (see /runs/{run_id}/gpus)")]
ProfileId = Annotated[int, Path(ge=1, le=MAX_ID, description="id of the stage profile")]
FrontierId = Annotated[int, Path(ge=1, le=MAX_ID, description="id of the frontier")]
FromMs = Annotated[
    int | None, Query(None, ge=0, le=MAX_EPOCH_MS, description="range start, epoch ms, inclusive (default: first reading)")
]
ToMs = Annotated[
    int | None, Query(None, ge=0, le=MAX_EPOCH_MS, description="range end, epoch ms, inclusive (default: last reading)")
]


def one_of(choices: type[TextChoices]) -> WithJsonSchema:
    """Document a parameter taking a model's choices by their values, in place: as a shared schema
    component, one app's ``Status`` would overwrite another's of the same name."""
    return WithJsonSchema({"type": "string", "enum": list(choices.values)})


# The answers every operation may give besides 200, documented so clients and the fuzzer expect them.
ERRORS: dict[int, type[Schema]] = {400: InvalidInput, 401: Error, 404: Error}


class Pages(LimitOffsetPagination):
    """``?limit=&offset=`` over a list, answering ``{"items": [...], "count": total}``."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=MAX_PAGE_ITEMS, description=f"items per page, 1 to {MAX_PAGE_ITEMS}")
        offset: int = Field(0, ge=0, le=MAX_OFFSET, description="items to skip")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_limit=MAX_PAGE_ITEMS)


class Rows:
    """A queryset whose objects become response rows only for the page being served.

    ``Pages`` counts it through ``.all().count()`` and slices it, so a page costs one query for its
    rows and one for the count, however rows are built.
    """

    def __init__(self, queryset: QuerySet[Any], row: Callable[[Any], dict[str, Any]]) -> None:
        self.queryset = queryset
        self.row = row

    def all(self) -> QuerySet[Any]:
        return self.queryset

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        return [self.row(obj) for obj in self.queryset[window]]
