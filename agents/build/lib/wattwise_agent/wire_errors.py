"""How the wire's models say what is wrong: one ``WireError`` naming the field path and the problem.

``wattwise_agent.wire`` declares each message as pydantic models; this module turns pydantic's errors into the
messages senders read (the agent's usage errors, the app's Rejection table):

* :class:`Expect` on a field type gives every error of that type one message, ``expected <what>``
  (whatever broke: the type, a length, a range, a pattern), followed by ``got <value>``;
* :func:`rule` is a broken rule across fields, its text written by the model;
* :func:`parse` validates a whole message, :func:`check_field` one field on its own (the agent checks
  a run name or a zone before it has the whole message).

Messages read ``<path>: <problem>``, with paths as in the JSON (``gpus[1].temp_c``); at most three
problems are listed, then how many more there are.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, GetCoreSchemaHandler, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError, core_schema

M = TypeVar("M", bound=BaseModel)
_MAX_REPORTED = 3


class WireError(ValueError):
    """A message that does not follow the wire format; the text says what is wrong, for the sender."""


@dataclass(frozen=True)
class Expect:
    """Whatever is wrong with a value of the annotated type, the message reads ``expected <what>``."""

    what: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.custom_error_schema(handler(source), custom_error_type="expected",
                                               custom_error_message=f"expected {self.what}")


def rule(message: str) -> PydanticCustomError:
    """A broken rule; ``message`` is the whole text after the field's path."""
    return PydanticCustomError("rule", message)


def parse(model: type[M], data: Any, *, what: str = "body") -> M:
    """Validate ``data`` (e.g. a decoded JSON payload) against ``model``; raise WireError saying what is wrong.

    ``what`` names the whole value in messages about it (``body: not an object``).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _wire_error(exc, model, what) from None


@cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    info = model.model_fields[name]
    annotation: Any = info.annotation
    if info.metadata:
        annotation = Annotated[(annotation, *info.metadata)]
    return TypeAdapter(annotation)


def check_field(model: type[BaseModel], name: str, value: Any) -> Any:
    """Validate one field of ``model`` on its own and return the value as read; raise WireError.

    For the agent, which checks what it is given (a run name, tags, a zone) before it has the whole message.
    """
    try:
        return _field_adapter(model, name).validate_python(value)
    except ValidationError as exc:
        raise _wire_error(exc, model, name, prefix=(name,)) from None


def _wire_error(exc: ValidationError, model: type[BaseModel], what: str, prefix: tuple[str, ...] = ()) -> WireError:
    errors = exc.errors(include_url=False)
    messages = [_describe(error, model, what, prefix) for error in errors[:_MAX_REPORTED]]
    if len(errors) > _MAX_REPORTED:
        messages.append(f"and {len(errors) - _MAX_REPORTED} more problem(s)")
    return WireError("; ".join(messages))


def _describe(error: Any, model: type[BaseModel], what: str, prefix: tuple[str, ...]) -> str:
    loc = (*prefix, *error["loc"])
    path = _path(loc) or what
    kind, value = error["type"], error.get("input")
    if kind == "rule":  # a rule across fields names its own fields
        return f"{_path(loc)}: {error['msg']}" if loc else str(error["msg"])
    if kind == "missing":
        expected = _expected_at(model, loc)
        return f"{path}: missing" + (f"; {expected}" if expected else "")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: not an object, got {_shown(value)}"
    if kind == "list_type":
        return f"{path}: expected a list, got {_shown(value)}"
    if kind == "too_long":
        return f"{path}: {error['ctx'].get('actual_length', 'too many')} items, limit {error['ctx']['max_length']}"
    if kind == "too_short":
        return f"{path}: expected at least {error['ctx']['min_length']} item(s)"
    return f"{path}: {error['msg']}, got {_shown(value)}"


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return f"a {'list' if isinstance(value, (list, tuple)) else 'object'} of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _expected_at(model: type[BaseModel], loc: Sequence[int | str]) -> str | None:
    """What the field at ``loc`` expects (its ``Expect`` text), to say with "missing"."""
    current: Any = model
    for position, part in enumerate(loc):
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return None
        info = fields[part]
        if position == len(loc) - 1:
            return next((f"expected {e.what}" for e in _marks(info.annotation, info.metadata)), None)
        current = next(_models_in(info.annotation), None)
    return None


def _marks(annotation: Any, metadata: Sequence[Any]) -> Iterator[Expect]:
    yield from (m for m in metadata if isinstance(m, Expect))
    for arg in typing.get_args(annotation):
        yield from _marks(arg, getattr(arg, "__metadata__", ()))


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)
