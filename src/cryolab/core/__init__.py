"""The engine: sets, parameters, protocols, projects, runs, executors, templates, plugins.

It knows nothing about electron microscopy; :mod:`cryolab.em` builds the domain on it.
Submodules are imported where used, so starting a run process stays fast.
"""
