"""``course nbgrader-source`` lays out nbgrader's source/ from solutions/, and refuses bad input
in one line that names the value and what is allowed."""

from __future__ import annotations

import json

from course import cli, paths, release
from course.notebook_files import read_ipynb, read_markdown

LESSON = "resilience/circuit-breaker"


def test_writes_one_assignment_per_lesson_with_the_class_config(tmp_path, capsys):
    out = tmp_path / "class"
    assert cli.main(["nbgrader-source", str(out), LESSON]) == 0
    notebook = out / "source" / "circuit-breaker" / "circuit-breaker.ipynb"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "nbgrader_config.py", "source/circuit-breaker/circuit-breaker.ipynb"]
    assert (out / "nbgrader_config.py").read_bytes() == (
        paths.ROOT / "class" / "nbgrader_config.py").read_bytes()
    written, solution = read_ipynb(notebook), read_markdown(paths.SOLUTIONS / f"{LESSON}.md")
    assert [c.source for c in written.cells] == [c.source for c in solution.cells]
    assert written.metadata["exercise"] == {"source": f"solutions/{LESSON}.md"}
    assert [e.grade_id for e in release.exercises_of(written)] == [
        e.grade_id for e in release.exercises_of(solution)]
    assert "wrote" in capsys.readouterr().out


def test_keeps_an_instructors_own_config(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    assert cli.main(["nbgrader-source", str(tmp_path), LESSON]) == 0
    assert (tmp_path / "nbgrader_config.py").read_text() == "c = get_config()\n"
    json.loads((tmp_path / "source" / "circuit-breaker" / "circuit-breaker.ipynb").read_text())


def test_an_unknown_lesson_is_named_with_what_is_allowed(tmp_path, capsys):
    assert cli.main(["nbgrader-source", str(tmp_path), "resilience/circuit-braker"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'resilience/circuit-braker'" in err and "<category>/<slug>" in err
    assert not (tmp_path / "source").exists()


def test_out_must_be_a_folder(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("")
    assert cli.main(["nbgrader-source", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err and "a folder" in err
