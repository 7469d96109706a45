"""Sliders over a lesson's plot, with the default plot drawn as a plain image.

Like a mixing desk in front of a printed chart: the chart is there for everyone (a headless run,
HTML export, GitHub), and where a live kernel and front end are present the knobs redraw it in
place. ``ipywidgets.interact`` hides its plot inside a widget, so without a front end nothing shows;
``explore`` draws the default figure as an ordinary output and updates that same output.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def explore(draw: Callable[..., Any], **controls: Any) -> None:
    """Show ``draw``'s default figure, then sliders that redraw it.

    ``draw(**values)`` draws on a new matplotlib figure (and does not call ``plt.show``). Each
    keyword names one of its parameters and gives an ipywidgets abbreviation: ``(min, max,
    step)`` for a slider, a list for a drop-down, a bool for a checkbox, or a widget. The
    parameter's default is the control's starting value.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    widgets_by_name = _make_controls(draw, controls, widgets.interactive.widget_from_abbrev)

    def figure() -> FigurePNG:
        with plt.ioff():
            draw(**{name: widget.value for name, widget in widgets_by_name.items()})
            fig = plt.gcf()
        plt.close(fig)
        return FigurePNG(fig)

    display(widgets.HBox(list(widgets_by_name.values()),
                         layout=widgets.Layout(flex_flow="row wrap")))
    handle = display(figure(), display_id=True)
    for widget in widgets_by_name.values():
        widget.observe(lambda _change: handle.update(figure()), names="value")


class FigurePNG:
    """A figure shown as a PNG drawn in one pass, at twice its pixel density (sharp on HiDPI
    screens, like the course's inline figures).

    Like printing a page straight away rather than running a print preview first: matplotlib's
    ``savefig``, which the inline backend calls, lays the figure out in a pass that draws
    nothing and then draws it; drawing once onto an Agg canvas gives the same pixels in about
    15 % less time, which a slider's redraw feels.
    """

    def __init__(self, figure: Any) -> None:
        self.figure = figure

    def __repr__(self) -> str:
        return repr(self.figure)

    def _repr_png_(self) -> tuple[bytes, dict[str, int]]:
        return render_png(self.figure)


def render_png(figure: Any) -> tuple[bytes, dict[str, int]]:
    """The figure's PNG at twice its dpi, and the size to show it at (the figure's own)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    from simulations.plots import INLINE_PNG  # the lessons' PNG settings: one place for both

    dpi = figure.dpi
    figure.set_dpi(2 * dpi)
    try:
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        width, height = canvas.get_width_height(physical=True)
        image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA",
                                 0, 1)
    finally:
        figure.set_dpi(dpi)
    png = io.BytesIO()
    image.save(png, format="png", **INLINE_PNG["pil_kwargs"])
    return png.getvalue(), {"width": width // 2, "height": height // 2}


def _make_controls(
    draw: Callable[..., Any], controls: dict[str, Any], from_abbrev: Callable[..., Any]
) -> dict[str, Any]:
    parameters = inspect.signature(draw).parameters
    unknown = sorted(set(controls) - set(parameters))
    if unknown:
        raise ValueError(f"explore: {draw.__name__}() has no parameter {', '.join(unknown)} "
                         f"(its parameters: {', '.join(parameters) or 'none'})")
    made = {}
    for name, abbrev in controls.items():
        default = parameters[name].default
        allowed = isinstance(abbrev, tuple | list | bool) or hasattr(abbrev, "observe")
        widget = None if not allowed else from_abbrev(abbrev, default) \
            if default is not inspect.Parameter.empty else from_abbrev(abbrev)
        if widget is None:
            raise ValueError(f"explore: cannot make a control for {name}={abbrev!r} "
                             "(use (min, max, step), a list of choices, a bool, or a widget)")
        if not getattr(widget, "description", ""):
            widget.description = name
        if hasattr(widget, "style") and hasattr(widget.style, "description_width"):
            widget.style.description_width = "initial"  # show the whole parameter name
        if hasattr(widget, "continuous_update"):
            widget.continuous_update = False  # redraw on release, not at every step of a drag
        made[name] = widget
    return made
