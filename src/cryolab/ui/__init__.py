"""The notebook front end: widget forms, lazy galleries, plots and volume viewers.

The only layer that imports ipywidgets, anywidget, bokeh, napari or IPython (``DESIGN.md`` §2);
nothing of cryolab imports it but the package's entry points (``cryolab.form``, ``Set.gallery``).
"""
