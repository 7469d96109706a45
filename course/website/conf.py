"""Sphinx's settings for the course website, which ``course build`` builds.

The sources are the ``.ipynb`` twins of the lessons (``notebooks/``) and of the student copies
(``exercises/``), so a link between notebooks is a link between pages, as it is in JupyterLab.
The lessons are executed (with a cache); the student copies are shown as handed out.
``course.website.extension`` adds the navigation, the launch buttons and the vendored mermaid.
"""

project = "Distributed-Systems Design Patterns"
html_title = project
extensions = ["myst_nb", "sphinx_external_toc", "sphinxcontrib.mermaid",
              "course.website.extension"]
include_patterns = ["notebooks/**.ipynb", "exercises/**.ipynb"]
exclude_patterns = ["**/.ipynb_checkpoints"]
myst_fence_as_directive = ["mermaid"]  # a lesson's ```mermaid block, as JupyterLab draws it
suppress_warnings = ["myst.header"]  # a lesson's first heading is its title, then Level 1 ...

nb_execution_mode = "cache"
nb_execution_excludepatterns = ["exercises/*/*.ipynb"]
nb_execution_timeout = 120  # seconds a cell may take, as the test suite allows
nb_execution_show_tb = True  # a failing lesson's traceback, in the build's log
nb_merge_streams = True
nb_ipywidgets_js = {}  # sliders need a kernel; the figure beside them is a plain image

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "repository_branch": "main",
    "launch_buttons": {"notebook_interface": "jupyterlab"},
}
html_last_updated_fmt = None
html_copy_source = True  # the download button's .ipynb: the lesson as committed, to run
