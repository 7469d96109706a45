"""Progress on long work: `course check --batch` and `course build` report as they go."""

from __future__ import annotations

import argparse
from pathlib import Path

from course import batch, grader, site


def test_batch_prints_each_learner_as_soon_as_graded(tmp_path, monkeypatch, capsys):
    for learner in ("alice", "bob"):
        (tmp_path / f"{learner}.ipynb").write_text("{}")
    shown_before_next = []

    def fake_grade(path: Path, **options):
        shown_before_next.append(capsys.readouterr().out)  # what was printed before this one
        if path.stem == "bob":
            raise grader.GradingError("bob.ipynb: not a notebook")
        return grader.Report(submission=str(path), solution="s.md", exercises=[])

    monkeypatch.setattr(grader, "grade", fake_grade)
    namespace = argparse.Namespace(batch=tmp_path, csv=None, json=False)
    assert batch.run_batch(namespace, {"timeout": 5, "solution": None}) == 1
    assert shown_before_next == ["", "alice: 0/0 points\n"]
    assert capsys.readouterr().out.startswith("bob: unusable: bob.ipynb: not a notebook\n")


def test_build_shows_each_lesson_and_no_kernel_noise(course, capfd):
    course.lesson("foundations/queueing-basics", title="Queueing")
    out = course.root / "_build"
    assert site.run(course.args(paths=[], timeout=60, out=out)) == 0
    printed = capfd.readouterr()
    assert "[1/1] foundations/queueing-basics ... ok (" in printed.out
    assert printed.err == ""
