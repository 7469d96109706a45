"""Progress on long work: `course check --batch` reports each learner as it goes."""

from __future__ import annotations

import argparse
from pathlib import Path

from course import batch, grader


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

