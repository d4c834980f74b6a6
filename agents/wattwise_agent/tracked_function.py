"""``@wattwise_agent.track``: measure a plain function's GPU energy, like CodeCarbon's ``@track_emissions``.

    import wattwise_agent

    @wattwise_agent.track("nightly-finetune", tags=["nightly"])
    def finetune(epochs: int) -> float:
        ...
        return accuracy

    accuracy = finetune(3)                 # the function's own result
    tracker = finetune.tracker             # the latest call's Tracker, closed
    print(tracker.summary)

Each call opens a ``Tracker`` around the function (a window, as Zeus' ``begin_window``/``end_window``) and
closes it when the function returns or raises. ``@track`` alone names the run after the function.
Keywords other than ``on_end`` go to ``Tracker`` (``backend``, ``url``, ``token``, ``tags``, ``zone``, ...);
``on_end(tracker)`` is called after each call's Tracker closed, also when the function raised.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from wattwise_agent.torch_hooks import Tracker

R = TypeVar("R")


class TrackedFunction(Generic[R]):
    """A function whose every call is a tracked run; ``tracker`` is the latest call's Tracker."""

    def __init__(self, function: Callable[..., R], run: str | None,
                 on_end: Callable[[Tracker], object] | None, tracker_options: dict[str, Any]) -> None:
        functools.update_wrapper(self, function)
        self.function = function
        self.run = run if run is not None else function.__name__
        self.on_end = on_end
        self.tracker_options = tracker_options
        self.tracker: Tracker | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        tracker = Tracker(self.run, **self.tracker_options)
        self.tracker = tracker
        try:
            with tracker:
                return self.function(*args, **kwargs)
        finally:
            if self.on_end is not None:
                self.on_end(tracker)

    def __get__(self, instance: object, owner: type | None = None) -> Callable[..., R]:
        # Decorating a method: bind it like a plain function would be.
        return self if instance is None else functools.partial(self, instance)


@overload
def track(run: Callable[..., R], /) -> TrackedFunction[R]: ...


@overload
def track(run: str | None = None, /, *, on_end: Callable[[Tracker], object] | None = None,
          **tracker_options: Any) -> Callable[[Callable[..., R]], TrackedFunction[R]]: ...


def track(run: Any = None, /, *, on_end: Callable[[Tracker], object] | None = None,
          **tracker_options: Any) -> Any:
    """Decorate a function so that each call is a tracked run: ``@track``, ``@track("name", **options)``."""
    if callable(run):
        return TrackedFunction(run, None, on_end, tracker_options)
    if run is not None and (not isinstance(run, str) or not run.strip()):
        raise ValueError(f"track() takes a run name (a non-empty string) or a function, not {run!r}")

    def decorate(function: Callable[..., R]) -> TrackedFunction[R]:
        return TrackedFunction(function, run, on_end, tracker_options)

    return decorate
