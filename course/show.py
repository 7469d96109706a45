"""Show code from the course's packages inside a lesson, instead of keeping a second copy.

Like a museum that displays the original rather than a replica: the lesson shows the very
source that its tests check, so the two can never drift apart. In Jupyter the code appears as a
highlighted block; in plain Python it prints as text.
"""

from __future__ import annotations

import inspect
import textwrap


class Source:
    """Source text that Jupyter renders as a Markdown code block."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.text}\n```"


def show_source(*objects: object) -> Source:
    """The source of each class or function (``inspect.getsource``), one after the other."""
    if not objects:
        raise ValueError("show_source needs at least one class or function (got none)")
    parts = []
    for obj in objects:
        try:
            parts.append(textwrap.dedent(inspect.getsource(obj)).rstrip())
        except (TypeError, OSError):
            raise ValueError(f"show_source cannot find the source of {obj!r}: give a class "
                             "or function defined in a .py file") from None
    return Source("\n\n\n".join(parts))
