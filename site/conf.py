"""Sphinx configuration of the course site. scripts/build_site.py stages these pages with the executed
notebooks and the generated tables into build/site-src/ and builds build/site/ (offline: furo ships its assets)."""

project = "learnstrat"
author = "the learnstrat authors"
extensions = ["myst_nb"]
nb_execution_mode = "off"            # the notebooks were executed by `make course`; the site shows those outputs
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = "learnstrat: four ways to learn from other data"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
html_show_sourcelink = False
nb_ipywidgets_js = {}                # no widget state is shown; and the site must load nothing from a CDN
