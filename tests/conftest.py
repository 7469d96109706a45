"""The test tree's root: its folder is on ``sys.path``, so tests in every sub-folder share the
helpers beside this file (``jupyter_servers``)."""
