"""The Jupyter server extension: the authenticated REST API under ``/cryolab/api/`` that the
JupyterLab extension reads."""
