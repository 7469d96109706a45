# nbgrader's configuration for a class taking this course, for the instructor and the students.
#
# The instructor's course folder gets a copy (`course nbgrader-source <folder>` puts it beside
# source/); on a hub, every user's server finds it through JUPYTER_CONFIG_PATH
# (class/jupyterhub_config.py) or /etc/jupyter (class/helm/image-appendix), so students' fetch
# and submit use the same course id and exchange. docs/instructors.md walks through both set-ups.
import os

c = get_config()  # noqa: F821 (traitlets provides it when it loads this file)

c.CourseDirectory.course_id = "distributed-patterns"
# solutions/ pairs every notebook with a .md twin that holds the answers: never release it.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.md"]
# The folder every user can write to where releases and submissions meet; nbgrader's default
# (0.9) is /usr/local/share/nbgrader/exchange. NBGRADER_EXCHANGE moves it (the tests do).
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/usr/local/share/nbgrader/exchange")
