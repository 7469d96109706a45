"""The lesson card shows the lesson's own front matter, as HTML or as text."""

from __future__ import annotations

import pytest

from course.card import card, show_card


def test_card_text_and_html_come_from_the_front_matter(course):
    course.lesson("foundations/queueing-basics", title="Queueing Basics")
    course.lesson("resilience/toy-breaker")
    lesson_card = card("resilience/toy-breaker", course.root)
    text = str(lesson_card)
    assert text.splitlines()[0] == "Toy Breaker"
    for line in ("Difficulty: intermediate", "Reading time: 20 min", "Status: complete",
                 "Last updated: 2024-05-01", "When to use: When calls fail.",
                 "When not to use: When they never do.",
                 "Prerequisites: foundations/queueing-basics, latency"):
        assert line in text
    html = lesson_card._repr_html_()
    assert '<a href="../foundations/queueing-basics.ipynb">foundations/queueing-basics</a>' in html
    assert "latency" in html and 'href="latency' not in html  # a concept, not a lesson
    assert repr(lesson_card) == text


def test_card_escapes_html(course):
    course.lesson("caching/tricky", title="A <b> & C")
    assert "A &lt;b&gt; &amp; C" in card("caching/tricky", course.root)._repr_html_()


def test_show_card_prints_text_without_a_front_end(course, capsys):
    course.lesson("resilience/toy-breaker")
    show_card("resilience/toy-breaker", course.root)
    assert capsys.readouterr().out.startswith("Toy Breaker\nWhat the toy pattern solves.")


def test_show_card_finds_the_course_from_the_lesson_folder(course, capsys, monkeypatch):
    course.lesson("resilience/toy-breaker")
    monkeypatch.chdir(course.root / "notebooks" / "resilience")  # where a kernel runs
    show_card("resilience/toy-breaker")
    assert "Toy Breaker" in capsys.readouterr().out


@pytest.mark.parametrize("slug", ["resilience/nothing", "toy-breaker"])
def test_unknown_lesson_is_a_clear_error(course, slug):
    course.lesson("resilience/toy-breaker")
    with pytest.raises(ValueError, match=f"no lesson '{slug}': expected the file notebooks/"):
        card(slug, course.root)
