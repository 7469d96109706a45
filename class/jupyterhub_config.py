# JupyterHub for a class on one machine: every student and instructor logs in with their own
# account on it (PAM, JupyterHub's default authenticator) and gets a JupyterLab server that runs
# as that account (LocalProcessSpawner, the default spawner), in the environment the hub runs
# from (`python3 dev.py test` builds it: the course, nbgrader, nbgitpuller, JupyterHub and, in
# .npm/, configurable-http-proxy).
#
#     sudo COURSE_INSTRUCTORS=ada COURSE_STUDENTS="amy bob" \
#         .venv/bin/jupyterhub -f class/jupyterhub_config.py
#
# JupyterHub must run as root to start servers as other users. It listens on JupyterHub's
# default http://:8000 (every interface; put HTTPS in front of it, or set bind_url and
# ssl_cert/ssl_key, before students log in from elsewhere). tests/hub/ starts the hub from this
# very file (ports, database and names changed) and runs a class through it.
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (traitlets provides it when it loads this file)

CLASS = Path(__file__).resolve().parent  # holds nbgrader_config.py
ROOT = CLASS.parent
BIN = Path(sys.executable).parent  # the environment the hub runs from
EXCHANGE = os.environ.get("NBGRADER_EXCHANGE", "/usr/local/share/nbgrader/exchange")


# Every account's server runs this environment's Python: each folder above it must let others
# in (pyenv's under /root does not), or their servers run the system's libpython instead.
for folder in Path(sys.base_prefix).resolve().parents:
    if not folder.stat().st_mode & 0o001:
        raise SystemExit(f"{folder} cannot be entered by other accounts, so their servers cannot "
                         f"run {sys.base_prefix}; install the course with a Python outside it")


def names(variable: str) -> set[str]:
    return set(os.environ.get(variable, "").replace(",", " ").split())


# Who may log in: the instructors (hub admins: they can open a student's server) and the students.
c.Authenticator.admin_users = names("COURSE_INSTRUCTORS")
c.Authenticator.allowed_users = names("COURSE_STUDENTS") | names("COURSE_INSTRUCTORS")

c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
# JupyterHub passes a server almost nothing of its own environment (Spawner.env_keep): give it
# this environment's commands (nbgrader, course, jupyter) and the class's nbgrader config.
c.Spawner.environment = {
    "PATH": os.pathsep.join([str(BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
    "JUPYTER_CONFIG_PATH": str(CLASS),
    "NBGRADER_EXCHANGE": EXCHANGE,
}

proxy = ROOT / ".npm" / "node_modules" / ".bin" / "configurable-http-proxy"
if proxy.exists():  # installed by `python3 dev.py test`; else configurable-http-proxy on PATH
    c.ConfigurableHTTPProxy.command = [str(proxy)]

# nbgrader's exchange must exist and be writable by everyone before the first release.
os.makedirs(EXCHANGE, exist_ok=True)
os.chmod(EXCHANGE, 0o777)
