"""class/helm/values.yaml uses only keys the Zero to JupyterHub chart documents, with the types
it documents, and agrees with the class's nbgrader config and the tested tool versions.

Like checking a form against the office's own list of fields before posting it: the key paths
below were read from the chart's schema, ``jupyterhub/values.schema.yaml`` of
jupyterhub/zero-to-jupyterhub-k8s at tag 4.4.0 (commit 5c5f5df751588a68a7781ead01d0f62e88e2e72f),
only those the values use. The chart cannot be installed here (no Kubernetes).
"""

from __future__ import annotations

import re
from importlib import metadata

import yaml

from course.paths import ROOT

CHART_VERSION = "4.4.0"
VALUES = ROOT / "class" / "helm" / "values.yaml"
APPENDIX = ROOT / "class" / "helm" / "image-appendix"
# key path -> the types the schema allows there
DOCUMENTED = {
    "hub": ("object",),
    "hub.config": ("object",),
    "singleuser": ("object",),
    "singleuser.image": ("object",),
    "singleuser.image.name": ("string",),
    "singleuser.image.tag": ("string",),
    "singleuser.defaultUrl": ("string", "null"),
    "singleuser.storage": ("object",),
    "singleuser.storage.extraVolumes": ("object", "array", "null"),
    "singleuser.storage.extraVolumeMounts": ("object", "array", "null"),
    "singleuser.lifecycleHooks": ("object",),
    "singleuser.lifecycleHooks.postStart": ("object",),
}
# Where the schema stops checking (additionalProperties: true, or Kubernetes objects passed
# through): what is below is free. hub.config takes any traitlets class name ("^[A-Z].*$").
FREE = {"hub.config": re.compile(r"[A-Z].*"), "singleuser.storage.extraVolumes": None,
        "singleuser.storage.extraVolumeMounts": None, "singleuser.lifecycleHooks.postStart": None}
TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
         float: "number", type(None): "null"}


def key_paths(node: object, path: str = ""):
    """(path, value) for every key under ``node``, stopping below the free nodes."""
    if not isinstance(node, dict) or path in FREE:
        return
    for key, value in node.items():
        child = f"{path}.{key}" if path else key
        yield child, value
        yield from key_paths(value, child)


def test_values_use_only_documented_keys_of_the_chart():
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    problems = []
    for path, value in key_paths(values):
        parent, _, key = path.rpartition(".")
        if parent in FREE:
            if FREE[parent] is not None and not FREE[parent].fullmatch(key):
                problems.append(f"{path}: {parent} takes only keys like {FREE[parent].pattern}")
        elif path not in DOCUMENTED:
            problems.append(f"{path}: not a key of chart {CHART_VERSION}'s schema")
        elif TYPES[type(value)] not in DOCUMENTED[path]:
            problems.append(f"{path}: a {TYPES[type(value)]}, the chart wants "
                            f"{' or '.join(DOCUMENTED[path])}")
    assert not problems, "\n".join(problems)
    assert f"--version {CHART_VERSION}" in VALUES.read_text(encoding="utf-8")


def test_values_mount_the_exchange_the_nbgrader_config_names():
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    storage = values["singleuser"]["storage"]
    config = (ROOT / "class" / "nbgrader_config.py").read_text(encoding="utf-8")
    default = re.search(r'"NBGRADER_EXCHANGE", "([^"]+)"', config).group(1)
    mounts = {m["name"]: m["mountPath"] for m in storage["extraVolumeMounts"].values()}
    volumes = {v["name"] for v in storage["extraVolumes"].values()}
    assert mounts == {"nbgrader-exchange": default} and volumes == set(mounts)
    assert values["singleuser"]["lifecycleHooks"]["postStart"]["exec"]["command"][0] == "gitpuller"


def test_image_appendix_pins_the_versions_the_hub_test_ran():
    pinned = dict(re.findall(r"\b(nbgrader|nbgitpuller)==(\S+)", APPENDIX.read_text()))
    assert pinned == {name: metadata.version(name) for name in ("nbgrader", "nbgitpuller")}
