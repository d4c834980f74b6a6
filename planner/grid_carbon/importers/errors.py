"""The one exception importers raise.

Importers are all-or-nothing: a file either parses completely into normalised records or raises
:class:`CarbonImportError`, naming the format, the line (CSV) or JSON path, the field, and what is
wrong — never a partial result. It subclasses ``ValueError`` so generic callers can catch it too.
"""

from __future__ import annotations


class CarbonImportError(ValueError):
    """A grid-intensity or emissions file that cannot be imported as a whole.

    ``line`` is the 1-based physical line in a CSV (the header is line 1); ``field`` is the column
    name or a JSON path such as ``history[3].carbonIntensity``.
    """

    def __init__(
        self,
        format_name: str,
        problem: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.format_name = format_name
        self.problem = problem
        self.line = line
        self.field = field
        where = [format_name]
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {problem}")
