"""`course validate`: each rule of the lesson contract is enforced, and broken files never crash."""

from __future__ import annotations

import pytest
from course_fixtures import lesson_text, write_notebook

from course import validate as checker

SLUG = "resilience/toy-breaker"


def messages(report, level="error"):
    return [f"{f.where}: {f.message}" for f in report.findings if f.level == level]


def check(course, slug=SLUG):
    [report] = [r for r in checker.validate(course.root) if r.path.stem == slug.split("/")[1]]
    return report


def test_a_lesson_meeting_every_rule_is_ok(course):
    course.lesson(SLUG)
    course.solutions(SLUG)
    report = check(course)
    assert report.findings == [] and not report.failed
    assert report.render().endswith(": OK")


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("  difficulty: intermediate\n", "", "missing field(s): difficulty"),
    ("category: resilience", "category: caching", "does not match the folder 'resilience'"),
    ("category: resilience", "category: gardening", "unknown category 'gardening'"),
    ("difficulty: intermediate", "difficulty: guru", "difficulty 'guru' is not one of"),
    ("status: complete", "status: done", "status 'done' is not one of"),
    ("reading_time: 20", "reading_time: 0", "reading_time must be a positive whole number"),
    ("reading_time: 20", "reading_time: '20 min'", "reading_time must be a positive whole"),
    ("'2024-05-01'", "'2024-02-30'", "last_updated must be a real date"),
    ("'2024-05-01'", "May 2024", "last_updated must be a real date"),
    ("prerequisites: [foundations/queueing-basics, latency]", "prerequisites: latency",
     "prerequisites must be a list"),
    ("description: What the toy pattern solves.", "description: ''",
     "description must be non-empty text"),
])
def test_front_matter_problems_are_errors(course, old, new, expected):
    text = lesson_text(SLUG)
    assert old in text
    course.lesson(SLUG, text.replace(old, new))
    course.solutions(SLUG)
    report = check(course)
    found = messages(report)
    assert any(expected in m and m.startswith("front matter") for m in found), report.render()


def test_an_unquoted_yaml_date_is_accepted(course):
    course.lesson(SLUG, lesson_text(SLUG).replace("'2024-05-01'", "2024-05-01"))
    course.solutions(SLUG)
    assert check(course).findings == []


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("\n# Toy Breaker\n", "\n# Another Title\n", "title 'Another Title' differs"),
    ("**Stop calling what is already down.**", "Stop calling.", "no bold one-line value"),
    ("> Fail fast, recover gracefully.", "Fail fast.", "no quote or insight line"),
])
def test_opening_problems_are_errors(course, old, new, expected):
    course.lesson(SLUG, lesson_text(SLUG).replace(old, new))
    course.solutions(SLUG)
    assert any(expected in m for m in messages(check(course)))


def test_the_card_must_show_the_lessons_own_slug(course):
    course.lesson(SLUG, lesson_text(SLUG).replace(f'show_card("{SLUG}")',
                                                  'show_card("caching/other")'))
    course.solutions(SLUG)
    [message] = messages(check(course))
    assert message.startswith("cell 2 (# Toy Breaker)")
    assert "'caching/other'" in message and SLUG in message


def test_a_first_code_cell_without_the_card_is_an_error(course):
    text = lesson_text(SLUG).replace('show_card("resilience/toy-breaker")', 'print("hi")')
    course.lesson(SLUG, text)
    course.solutions(SLUG)
    assert any("must call show_card" in m for m in messages(check(course)))


def test_missing_sub_section_is_named_with_its_level_heading(course):
    course.lesson(SLUG, lesson_text(SLUG).replace("### Key Benefits", "### Upsides"))
    course.solutions(SLUG)
    [message] = messages(check(course))
    assert "## 🎯 Level 1: Intuition" in message
    assert "missing sub-section '### Key Benefits'" in message


def test_levels_are_accepted_without_emoji(course):
    text = lesson_text(SLUG)
    for emoji in ("🎯 ", "🏗️ ", "🚀 ", "⚡ ", "🔬 ", "📚 ", "✅ "):
        text = text.replace(f"## {emoji}", "## ")
    course.lesson(SLUG, text)
    course.solutions(SLUG)
    assert check(course).findings == []


def test_levels_out_of_order_are_an_error(course):
    text = lesson_text(SLUG)
    text = (text.replace("## 🎯 Level 1: Intuition", "## PLACEHOLDER")
            .replace("## 🏗️ Level 2: Core Implementation", "## 🎯 Level 1: Intuition")
            .replace("## PLACEHOLDER", "## 🏗️ Level 2: Core Implementation"))
    course.lesson(SLUG, text)
    course.solutions(SLUG)
    assert any("out of order" in m for m in messages(check(course)))


@pytest.mark.parametrize(("status", "level"), [
    ("stub", "warning"), ("partial", "error"), ("complete", "error"),
])
def test_structure_problems_are_warnings_only_for_stubs(course, status, level):
    text = lesson_text(SLUG, status=status).replace("## 🔬 Level 5: Deep Dive", "## Later")
    course.lesson(SLUG, text)
    course.solutions(SLUG)
    report = check(course)
    assert any("missing heading '## 🔬 Level 5: Deep Dive'" in m
               for m in messages(report, level)), report.render()
    assert report.failed == (level == "error")


def test_a_lesson_without_mermaid_is_reported(course):
    text = lesson_text(SLUG).replace("```mermaid\ngraph TD\n    A --> B\n```", "A picture.")
    course.lesson(SLUG, text)
    course.solutions(SLUG)
    assert any("mermaid" in m for m in messages(check(course)))


def test_links_to_lessons_must_resolve(course):
    related = ("[Good](../caching/cache-aside.ipynb), [Bad](../caching/missing.md#top), "
               "[Web](https://example.org/x.md)")
    course.lesson("caching/cache-aside", status="stub")
    course.lesson(SLUG, lesson_text(SLUG, related=related))
    course.solutions(SLUG)
    [message] = messages(check(course))
    assert "'../caching/missing.md#top' does not resolve" in message
    assert "(### Related Patterns)" in message  # the heading right above the link


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("A fuse in a house", "[Pattern Name] is like a fuse", "placeholder(s) left: [Pattern Name]"),
    ("- **Fast failure**: callers stop waiting.", "- **[Benefit 1]**: [Brief explanation]",
     "[Benefit 1], [Brief explanation]"),
    ("It runs in production somewhere.", "[Company/System] runs it.", "[Company/System]"),
    ("A fuse in a house", "TODO: an analogy. A fuse", "TODO left"),
    ("    def call(self):\n        return 1", "    def call(self):\n        pass",
     "'call' has only 'pass' as its body"),
    ("class Toy:\n    \"\"\"A toy.\"\"\"\n\n    def call(self):\n        return 1",
     "class Toy:\n    pass\n\nToy.call = lambda self: 1", "'Toy' has only 'pass'"),
])
def test_a_complete_lesson_keeps_no_template_leftovers(course, old, new, expected):
    text = lesson_text(SLUG)
    assert old in text
    course.lesson(SLUG, text.replace(old, new))
    course.solutions(SLUG)
    assert any(expected in m for m in messages(check(course))), check(course).render()


def test_leftovers_are_allowed_while_a_lesson_is_partial(course):
    text = lesson_text(SLUG, status="partial").replace("A fuse in a house", "TODO [Pattern Name]")
    course.lesson(SLUG, text)
    assert check(course).findings == []


def test_links_checkboxes_and_mermaid_labels_are_not_placeholders(course):
    text = lesson_text(SLUG).replace("A fuse in a house", "See [Docs](https://example.org), a "
                                     "`[Literal]`, E[S] = 1/μ, $x \\in [A, B]$ and [x] done. "
                                     "A fuse in a house")
    text = text.replace("    A --> B", "    A[Client] --> B[Service]")
    course.lesson(SLUG, text)
    course.solutions(SLUG)
    assert check(course).findings == []


def test_a_complete_pattern_needs_three_graded_exercises(course):
    course.lesson(SLUG)
    assert messages(check(course)) == [
        "exercises: no exercises: solutions/resilience/toy-breaker.md does not exist"
        .replace("solutions/", f"{course.root}/solutions/")
    ]
    course.solutions(SLUG, graded=2)
    [message] = messages(check(course))
    assert "has 2 graded test cell(s); a complete lesson needs at least 3" in message


def test_foundations_follow_the_lighter_rules(course):
    slug = "foundations/queueing-basics"
    course.lesson(slug, title="Queueing Basics", difficulty="beginner")
    assert check(course, slug).findings == []  # no levels, no solutions needed
    text = lesson_text(slug, title="Queueing Basics").replace("```mermaid", "```text")
    course.lesson(slug, text)
    assert any("mermaid" in m for m in messages(check(course, slug)))


def test_the_start_page_is_checked_for_links_only(course):
    write_notebook(course.root / "notebooks" / "index.md",
                   "# Start\n\n[Gone](resilience/gone.ipynb), [Here](index.ipynb) and "
                   "[its source](index.md)\n")
    [report] = checker.validate(course.root)
    assert [f.message for f in report.findings] == [
        "link 'resilience/gone.ipynb' does not resolve to a file",
        "link 'index.md' opens the notebook's source; link its .ipynb (JupyterLab and the "
        "website open that)",
    ]


def test_broken_files_get_one_line_each_and_the_rest_are_still_checked(course):
    notebooks = course.root / "notebooks"
    course.lesson(SLUG)
    course.solutions(SLUG)
    course.lesson("caching/bad-json")
    (notebooks / "caching" / "bad-json.ipynb").write_text("{not json")
    course.lesson("caching/no-twin")
    (notebooks / "caching" / "no-twin.ipynb").unlink()
    (notebooks / "caching" / "bad-yaml.md").write_text("---\nlesson: [unclosed\n---\n# X\n")
    write_notebook(notebooks / "caching" / "no-meta.md", "# Just text\n")
    write_notebook(notebooks / "gardening" / "roses.md", "# Roses\n")
    reports = {r.path.stem: r for r in checker.validate(course.root)}
    assert not reports["toy-breaker"].failed
    broken = {name: r.broken for name, r in reports.items() if r.broken}
    assert set(broken) == {"bad-json", "no-twin", "bad-yaml", "no-meta", "roses"}
    assert "bad-json.ipynb: not a valid notebook" in broken["bad-json"]
    assert "no-twin.md: no .ipynb twin" in broken["no-twin"]
    assert "bad-yaml.md: front matter is not valid YAML" in broken["bad-yaml"]
    assert "no 'lesson' front matter" in broken["no-meta"]
    assert "unknown lesson folder 'gardening'" in broken["roses"]
    assert all("\n" not in line for line in broken.values())


def test_cli_exit_codes_and_report(course, capsys):
    course.lesson(SLUG)
    course.solutions(SLUG)
    assert checker.run(course.args(paths=[])) == 0
    assert capsys.readouterr().out.strip().endswith("toy-breaker.md: OK")
    course.lesson("caching/broken", lesson_text("caching/broken").replace("### Key Benefits", ""))
    assert checker.run(course.args(paths=[course.root / "notebooks" / "caching"])) == 1
    out = capsys.readouterr().out
    assert "broken.md: 2 error(s)" in out and "toy-breaker" not in out
    assert checker.run(course.args(paths=[course.root / "nowhere"])) == 2
    assert "no such file or directory" in capsys.readouterr().err


def test_a_complete_lesson_has_its_code_in_every_tree(course):
    course.lesson(SLUG, code=False)
    course.solutions(SLUG)
    found = messages(check(course))
    for path in ("patterns/resilience/toy_breaker.py", "simulations/resilience/toy_breaker.py",
                 "tests/resilience/test_toy_breaker.py"):
        assert any(m.startswith("layout: no ") and path in m for m in found), found


def test_a_complete_lesson_imports_its_pattern_and_study(course):
    course.lesson(SLUG, imports=False)
    course.solutions(SLUG)
    assert messages(check(course)) == [
        f"layout: the lesson never imports {module}: show its code from there rather than "
        "keeping a copy"
        for module in ("patterns.resilience.toy_breaker", "simulations.resilience.toy_breaker")]


def test_a_foundations_lesson_needs_no_pattern(course):
    slug = "foundations/queueing-basics"
    course.lesson(slug, title="Queueing Basics", difficulty="beginner")
    assert not (course.root / "patterns").exists()
    assert check(course, slug).findings == []


def test_the_capstone_has_its_own_sections_and_exercises_but_no_pattern(course):
    slug = "capstone/bad-day"
    course.lesson(slug, title="Bad Day", difficulty="advanced")
    assert not (course.root / "patterns").exists()
    [missing] = messages(check(course, slug))
    assert missing.startswith("exercises: no exercises: ")
    assert missing.endswith("solutions/capstone/bad-day.md does not exist")
    course.solutions(slug)
    assert check(course, slug).findings == []
    text = lesson_text(slug, title="Bad Day", difficulty="advanced")
    course.lesson(slug, text.replace("## 📊 The Dashboard", "## The Panels"))
    assert messages(check(course, slug)) == ["lesson: missing heading '## 📊 The Dashboard'"]
    swapped = text.replace("## 🌩️ The Bad Day", "## SWAP").replace(
        "## 🧰 Your Design", "## 🌩️ The Bad Day").replace("## SWAP", "## 🧰 Your Design")
    course.lesson(slug, swapped)
    [problem] = messages(check(course, slug))
    assert "out of order: the order is 🗺️ The System → 🌩️ The Bad Day → 🧰 Your Design" in problem
