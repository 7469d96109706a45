"""Course tooling: the catalog, the lesson checker, notebook sync, exercise release and grading.

Everything here is reached through one command, ``course`` (see ``course --help``).
"""
