"""Sphinx configuration (rosdoc2 builds this folder too): MyST Markdown pages, reference pages
generated from the code at build time (`_ext/generated.py`), warnings are errors in CI
(`test/test_docs.py` runs `sphinx-build -W`)."""
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the checkout's robot_classify, for the generated pages

project = "robot_classify"
author = "robot_classify developers"
copyright = "robot_classify developers, Apache-2.0"
# One version, package.xml's (setup.py and CHANGELOG.rst carry the same; test_docs checks they agree)
release = version = re.search(r"<version>([^<]+)</version>", (HERE.parent / "package.xml").read_text()).group(1)

extensions = ["myst_parser", "generated"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "generated", "Thumbs.db", ".DS_Store"]  # generated/: included, not pages

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) links are checked like any reference
nitpicky = True
suppress_warnings: list[str] = []

html_theme = "alabaster"
# The body as wide as the window: the topic, schema and results tables are wider than
# alabaster's fixed 940 px and were cut off at their right-hand column.
html_theme_options = {"page_width": "auto", "body_max_width": "none"}
html_title = f"robot_classify {release}"
html_static_path: list[str] = []
