"""Exercises with self-checks for the tutorials.

Each tutorial ``NN`` has a module ``aimc_lab.exercises.tNN`` holding an :class:`ExerciseSet`. In a
notebook a student writes an answer in code and asks for feedback::

    from aimc_lab.exercises import t01
    t01.hint("adc_bits")                 # a collapsible hint
    t01.check("adc_bits", my_answer)     # right or wrong, and why

A check never raises on a wrong answer, whatever its type: it says what was expected instead.
Reference solutions live in ``tests/exercises/`` (CI runs every check against them), not here, so a
student reading the library does not stumble on them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional

__all__ = ["Feedback", "Exercise", "ExerciseSet", "right", "wrong", "expect_number", "expect_close"]


@dataclass(frozen=True)
class Feedback:
    """The answer to one check: ``correct`` and a sentence saying why. Truthy when correct."""

    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        return ("✓ Right. " if self.correct else "✗ Not yet. ") + self.message

    def _repr_html_(self) -> str:
        colour, border, mark = (("#e8f5e9", "#2e7d32", "✓ Right.") if self.correct
                                else ("#fdecea", "#c62828", "✗ Not yet."))
        return (f'<div style="background:{colour};border-left:4px solid {border};padding:6px 10px">'
                f"<b>{mark}</b> {html.escape(self.message)}</div>")


def right(message: str) -> Feedback:
    return Feedback(True, message)


def wrong(message: str) -> Feedback:
    return Feedback(False, message)


def expect_number(answer: Any, what: str) -> Optional[Feedback]:
    """``None`` when ``answer`` is a real number (a Python or 0-d numpy/torch scalar), else the feedback."""
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return wrong(f"{what} should be a number; got {type(answer).__name__} {answer!r:.60}.")
    if value != value or value in (float("inf"), float("-inf")):
        return wrong(f"{what} should be a finite number; got {value}.")
    return None


def expect_close(answer: Any, expected: float, *, rel: float, what: str, why: str) -> Feedback:
    """Right when ``answer`` is within ``rel`` (relative) of ``expected``; ``why`` explains the value."""
    bad = expect_number(answer, what)
    if bad is not None:
        return bad
    value = float(answer)
    if abs(value - expected) <= rel * abs(expected):
        return right(f"{what} = {value:.4g}. {why}")
    direction = "too large" if value > expected else "too small"
    return wrong(f"{what} = {value:.4g} is {direction} (expected about {expected:.4g}, within "
                 f"{rel:.0%}). {why}")


@dataclass(frozen=True)
class Exercise:
    """One exercise: a question, a hint, and ``check(answer) -> Feedback``."""

    name: str
    question: str
    hint: str
    check: Callable[[Any], Feedback]


class ExerciseSet:
    """The exercises of one tutorial, looked up by name."""

    def __init__(self, tutorial: str, exercises: Iterable[Exercise]):
        self.tutorial = tutorial
        self._exercises: Dict[str, Exercise] = {}
        for ex in exercises:
            if ex.name in self._exercises:
                raise ValueError(f"exercise name {ex.name!r} is used twice in {tutorial}")
            self._exercises[ex.name] = ex

    @property
    def names(self) -> list:
        return list(self._exercises)

    def __getitem__(self, name: str) -> Exercise:
        if not isinstance(name, str) or name not in self._exercises:
            raise KeyError(f"{self.tutorial} has no exercise {name!r}; it has {self.names}")
        return self._exercises[name]

    def question(self, name: str) -> str:
        return self[name].question

    def hint(self, name: str):
        """A collapsible hint (an HTML ``<details>`` block in a notebook, plain text elsewhere)."""
        ex = self[name]
        return _Hint(ex.name, ex.hint)

    def check(self, name: str, answer: Any) -> Feedback:
        ex = self[name]
        try:
            return ex.check(answer)
        except Exception as err:  # a malformed answer must get feedback, not a traceback
            return wrong(f"could not check this answer ({type(err).__name__}: {err}).")


@dataclass(frozen=True)
class _Hint:
    name: str
    text: str

    def __str__(self) -> str:
        return f"Hint ({self.name}): {self.text}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return (f"<details><summary>Hint for <code>{html.escape(self.name)}</code> (click to open)"
                f"</summary><p>{html.escape(self.text)}</p></details>")
