"""Text that came from a submission, made safe to print and to store.

Like a mailroom that opens the post before it reaches the desk: a message from a learner's code,
a file name or a metadata value may carry what a terminal or a spreadsheet would obey rather than
show (escape codes that redraw the screen, a formula), or be long enough to swamp a report. These
helpers keep what a reader needs and make the rest inert.
"""

from __future__ import annotations

import re

MAX_MESSAGE = 2000  # characters of one message kept in a report, a row or a printout
# Terminal escape sequences (CSI ... final byte, or ESC and one character), then the remaining
# C0 and C1 control characters except tab and newline.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What a spreadsheet reads as the start of a formula (CWE-1236, OWASP ASVS 1.2.10).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def printable(text: object, limit: int = MAX_MESSAGE) -> str:
    """``text`` without escape sequences or control characters (tabs and newlines kept),
    cut to ``limit`` characters with a note of how much was left out."""
    clean = _CONTROLS.sub("", _ESCAPES.sub("", str(text)))
    if len(clean) <= limit:
        return clean
    return f"{clean[:limit]}… ({len(clean) - limit} more characters left out)"


def file_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (kept by the OS as surrogates) shown as
    ``\\xNN`` escapes, control characters removed, at most 200 characters."""
    decoded = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return printable(decoded, limit=200)


def spreadsheet_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a leading
    apostrophe."""
    return f"'{value}" if value.startswith(_FORMULA_START) else value
