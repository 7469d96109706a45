"""The explore helper: default figure as a plain output, sliders that redraw it in place."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course import explore as explore_module  # noqa: E402


class FakeHandle:
    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj)


@pytest.fixture
def shown(monkeypatch):
    """Everything explore displays, in order; the figure's handle records updates."""
    import IPython.display

    objects, handle = [], FakeHandle()

    def fake_display(obj, display_id=False):
        objects.append(obj)
        return handle if display_id else None

    monkeypatch.setattr(IPython.display, "display", fake_display)
    return objects, handle


def draw_line(slope=1.0, label="line"):
    plt.plot([0, 1], [0, slope], label=label)


def line_end(shown):
    return shown.figure.axes[0].lines[0].get_ydata()[-1]


def test_default_figure_is_a_plain_output_and_a_slider_redraws_it(shown):
    objects, handle = shown
    explore_module.explore(draw_line, slope=(0.0, 5.0, 0.5))
    controls, fig = objects
    assert isinstance(fig.figure, matplotlib.figure.Figure)
    assert line_end(fig) == 1.0, "the first figure uses draw's default"
    slider = controls.children[0]
    assert (slider.min, slider.max, slider.value, slider.description) == (0.0, 5.0, 1.0, "slope")
    assert slider.continuous_update is False, "a drag redraws once, on release"
    slider.value = 3.0
    assert [line_end(f) for f in handle.updates] == [3.0]
    assert not plt.get_fignums(), "explore closes its figures so none is shown twice"


def test_choices_become_a_dropdown(shown):
    objects, handle = shown
    explore_module.explore(draw_line, label=["line", "other"])
    dropdown = objects[0].children[0]
    dropdown.value = "other"
    assert handle.updates[0].figure.axes[0].lines[0].get_label() == "other"


def test_unknown_parameter_is_named(shown):
    with pytest.raises(ValueError, match=r"draw_line\(\) has no parameter slop .*slope, label"):
        explore_module.explore(draw_line, slop=(0, 1))


def test_unusable_abbreviation_is_explained(shown):
    with pytest.raises(ValueError, match="cannot make a control for slope"):
        explore_module.explore(draw_line, slope=object())


@pytest.mark.parametrize("abbrev", ["high", 3, {"a": 1}])
def test_only_ranges_lists_bools_and_widgets_make_controls(shown, abbrev):
    """ipywidgets would make a text box or a slider of these: explore refuses, as it says."""
    with pytest.raises(ValueError, match=rf"cannot make a control for label={abbrev!r} \(use"):
        explore_module.explore(draw_line, label=abbrev)


def test_a_widget_is_used_as_given(shown):
    import ipywidgets

    objects, _ = shown
    text = ipywidgets.Text(value="mine", description="label")
    explore_module.explore(draw_line, label=text)
    assert objects[0].children[0] is text


def test_the_figure_is_drawn_once_as_savefig_would_draw_it_for_a_retina_screen():
    """One drawing pass gives the pixels the inline backend's savefig gives, at twice the
    figure's dpi, shown at the figure's own size."""
    import io

    import numpy as np
    from PIL import Image

    def figure():
        fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
        ax.plot([1, 10, 100], [3, 1, 2])
        ax.set(xscale="log", xlabel="x", ylabel="y")
        plt.close(fig)
        return fig

    fig = figure()
    png, size = explore_module.FigurePNG(fig)._repr_png_()
    saved = io.BytesIO()
    figure().savefig(saved, format="png", dpi=2 * fig.dpi)
    ours, theirs = (np.asarray(Image.open(io.BytesIO(data))) for data in (png, saved.getvalue()))
    assert ours.shape == theirs.shape == (4 * fig.dpi, 6 * fig.dpi, 4)
    assert size == {"width": 3 * fig.dpi, "height": 2 * fig.dpi}
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1
