"""Small fixture lessons and a throwaway course tree for the course tooling's tests."""

from __future__ import annotations

import argparse
from pathlib import Path

from course.notebook_files import read_markdown, write_pair
from course.paths import code_paths, python_name

FRONT_MATTER = """\
---
kernelspec:
  name: python3
  display_name: Python 3
  language: python
lesson:
  title: {title}
  description: What the toy pattern solves.
  category: {folder}
  difficulty: {difficulty}
  reading_time: 20
  prerequisites: [foundations/queueing-basics, latency]
  when_to_use: When calls fail.
  when_not_to_use: When they never do.
  status: {status}
  last_updated: '2024-05-01'
---
"""

OPENING = """
# {title}

**Stop calling what is already down.**

> Fail fast, recover gracefully.

```{{code-cell}} ipython3
from course.card import show_card

show_card("{slug}")
```
"""

# Every section and sub-section of the template, with real (if tiny) content.
PATTERN_BODY = """
## 🎯 Level 1: Intuition

### Core Concept

A fuse in a house trips before the wiring burns.

### Visual Overview

```mermaid
graph TD
    A --> B
```

### Key Benefits

- **Fast failure**: callers stop waiting.

## 🏗️ Level 2: Core Implementation

### Basic Structure

```{{code-cell}} ipython3
class Toy:
    \"\"\"A toy.\"\"\"

    def call(self):
        return 1
```

### Key Components

1. **Counter**: counts failures.

### Example Usage

```{{code-cell}} ipython3
{imports}assert Toy().call() == 1
```

## 🚀 Level 3: Real-World Usage

### Production Example: A Real System

It runs in production somewhere.

### Production-Grade Implementation

Hardened version.

### Common Pitfalls

1. **Never closing**: shown below.

### Performance Considerations

Measured by simulation.

## ⚡ Level 4: Advanced Techniques

### Optimization Strategies

Two of them.

### Integration Patterns

With retries.

### Monitoring & Observability

A dashboard.

## 🔬 Level 5: Deep Dive

### Mathematical Foundation

Little's law.

### Research Papers

One paper.

### Industry Evolution

Some years.

### Future Directions

Some trends.

## 📚 Additional Resources

### Implementations

pybreaker.

### Tools & Libraries

tenacity.

### Related Patterns

{related}

## ✅ Pattern Checklist

- [ ] You understand the trade-offs

## Exercises

[The exercises](../../exercises/{slug}.ipynb).
"""

FOUNDATION_BODY = """
## Queues in one picture

```mermaid
graph LR
    A --> B
```

```{{code-cell}} ipython3
{imports}print("ok")
```
"""

CAPSTONE_BODY = """
## 🗺️ The System

```mermaid
graph LR
    clients --> api --> db
```

```{{code-cell}} ipython3
{imports}print("ok")
```

## 🌩️ The Bad Day

A surge.

## 🧰 Your Design

The knobs.

## 📊 The Dashboard

The panels.

## 🏁 The Score Card

The SLO.

## Exercises

[The exercises](../../exercises/{slug}.ipynb).
"""

SOLUTION = """\
---
kernelspec:
  name: python3
  display_name: Python 3
  language: python
---

# Exercises

For [the lesson](../../notebooks/{slug}.ipynb).
{cells}
```{{code-cell}} ipython3
check_my_answers("{name}.ipynb")
```
"""

GRADED_CELL = """
```{{code-cell}} ipython3
---
nbgrader:
  grade: true
  grade_id: test-{n}
  locked: true
  points: 1
  schema_version: 3
  solution: false
---
assert True
```
"""


def lesson_text(slug: str, status: str = "complete", title: str = "Toy Breaker",
                difficulty: str = "intermediate", related: str = "None yet.",
                imports: bool = True) -> str:
    """A lesson that meets every rule of `course validate` (before a test breaks one).

    With ``imports``, a code cell imports the lesson's pattern and study, as the layout rule
    wants; without, the lesson runs in a kernel (where those toy modules do not exist).
    """
    folder, name = slug.split("/")
    package, module = python_name(folder), python_name(name)
    pattern, study = f"patterns.{package}.{module}", f"simulations.{package}.{module}"
    if folder == "foundations":
        body = FOUNDATION_BODY.format(imports=f"import {study}\n\n" if imports else "")
    elif folder == "capstone":
        body = CAPSTONE_BODY.format(slug=slug, imports=f"import {study}\n\n" if imports else "")
    else:
        body = PATTERN_BODY.format(related=related, slug=slug, imports=(
            f"import {pattern}\nimport {study}\n\n" if imports else ""))
    return (FRONT_MATTER.format(title=title, folder=folder, status=status, difficulty=difficulty)
            + OPENING.format(title=title, slug=slug) + body)


def write_notebook(path: Path, text: str) -> Path:
    """Write ``text`` as a MyST notebook at ``path`` and generate its twin."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    write_pair(read_markdown(path), path)
    return path


class Course:
    """A course tree under a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "notebooks").mkdir(parents=True)

    def lesson(self, slug: str, text: str | None = None, code: bool = True, **options) -> Path:
        """A lesson, and the released exercises its Exercises section links; with ``code``, also
        its pattern, study and tests (empty modules)."""
        write_notebook(self.root / "exercises" / f"{slug}.md", SOLUTION.format(
            slug=slug, name=slug.split("/")[-1], cells=""))
        if code:
            folder, name = slug.split("/")
            for tree, path in code_paths(self.root, folder, name).items():
                if tree != "solutions":
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text('"""A module of the toy lesson."""\n', encoding="utf-8")
        return write_notebook(self.root / "notebooks" / f"{slug}.md",
                              text if text is not None else lesson_text(slug, **options))

    def solutions(self, slug: str, graded: int = 3) -> Path:
        cells = "".join(GRADED_CELL.format(n=n) for n in range(graded))
        return write_notebook(self.root / "solutions" / f"{slug}.md", SOLUTION.format(
            slug=slug, name=slug.split("/")[-1], cells=cells))

    def args(self, **values) -> argparse.Namespace:
        return argparse.Namespace(root=self.root, **values)
