"""The documentation builds without a warning (broken internal links and references included),
its reference pages come from the code, and the README stays short and points at real files."""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "doc" / "_ext"))
import generated  # noqa: E402  (doc/_ext/generated.py: the pages written at build time)


def test_docs_build_with_warnings_as_errors(tmp_path):
    """`sphinx-build -W --keep-going`: MyST reports every link to a missing page or heading
    anchor (`myst_heading_anchors`), nitpicky mode every unresolved reference."""
    for module in ("sphinx", "myst_parser"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(ROOT / "doc"), str(tmp_path / "html")], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for page in ("index", "getting_started", "node", "parameters", "cli", "schemas", "architecture", "changelog"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    html = (tmp_path / "html" / "parameters.html").read_text()
    assert "segmentation.crease" in html and "teach.timeout" in html  # the generated table made it in


def test_parameter_page_has_every_parameter_with_its_default():
    from robot_classify.runtime.parameters import PARAMETERS

    page = generated.render_parameters()
    for name, spec in PARAMETERS.items():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, name
        default = str(spec.default).lower() if isinstance(spec.default, bool) else \
            f'"{spec.default}"' if isinstance(spec.default, str) else repr(spec.default)
        assert f"`{default}`" in row, (name, row)
        assert ("| yes |" in row) == spec.dynamic, (name, row)


def test_cli_page_has_every_command_and_option():
    import argparse

    from robot_classify.cli import COMMANDS, build_parser

    page = generated.render_cli()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, *_ in COMMANDS:
        assert f"### `robot-classify {name}`" in page, name
        for action in sub.choices[name]._actions:
            for option in action.option_strings:
                assert option in page, (name, option)


@pytest.mark.parametrize("schema, nested", [
    ("object_labels.schema.json", "objects[].top_k[].label"),  # through arrays
    ("replay_eval_metrics.schema.json", "centroid_error_mm.per_class.<name>.median"),  # through $ref and maps
])
def test_schema_pages_list_every_key(schema, nested):
    path = ROOT / "config" / schema
    page = generated.render_schema(path)
    for key in json.loads(path.read_text())["properties"]:
        assert f"| `{key}` |" in page, key
    assert f"| `{nested}` |" in page


def test_readme_is_short_and_its_links_and_test_command_are_real():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not re.match(r"[a-z]+://", target):
            assert (ROOT / target).exists(), target
    lines = text.splitlines()
    command = lines[lines.index("<!-- test-command -->") + 2]  # what .ci/run executes
    assert 'pip install -e ".[ros,sim,eval,dev,docs]"' in command and command.endswith("python -m pytest -q")
    # The set-up commands the documentation repeats are the README's, character for character
    readme_commands = {line for line in lines if line.startswith("python3 -m venv")}
    for page in (ROOT / "doc").glob("*.md"):
        for line in page.read_text().splitlines():
            if line.startswith("python3 -m venv"):
                assert line in readme_commands, (page.name, line)


def _documented_commands() -> list[tuple[str, str]]:
    """(page, command) for every `robot-classify ...` the README and doc/ show: inline code, and
    lines of code blocks that start with one."""
    out = []
    for page in [ROOT / "README.md", *sorted((ROOT / "doc").glob("*.md"))]:
        text = page.read_text()
        out += [(page.name, c) for c in re.findall(r"`(robot-classify [^`\n]+)`", text)]
        for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                if line.lstrip("$ ").startswith("robot-classify "):
                    out.append((page.name, re.split(r" && | \| | # ", line.lstrip("$ "))[0]))
    return out


def test_the_commands_the_docs_show_name_real_options_and_no_stray_words():
    """Found from outside: `robot-classify replay-eval BAG`, as the README and real_frames.md
    showed it, fails ("--bag is required"). A command mentioned by name alone is fine; an option
    it does not have, or a bare word where the command takes none, is not. Synopses ([...],
    a|b) are left out."""
    from robot_classify.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction").choices
    checked = 0
    for page, command in _documented_commands():
        words = command.split()
        if "[" in command or "|" in command or len(words) < 2 or words[1] not in commands:
            continue
        parser = commands[words[1]]
        positional = any(not a.option_strings for a in parser._actions)
        i, stray = 2, []
        while i < len(words):
            word = words[i]
            if not word.startswith("-"):
                stray.append(word)
                i += 1
                continue
            action = parser._option_string_actions.get(word.split("=")[0])
            assert action is not None, f"{page}: `{command}`: {words[1]} has no option {word}"
            i += 1
            if action.nargs in ("+", "*"):  # its values run to the next option
                while i < len(words) and not words[i].startswith("-"):
                    i += 1
            elif action.nargs != 0 and "=" not in word:
                i += action.nargs if isinstance(action.nargs, int) else 1
        assert positional or not stray, f"{page}: `{command}`: {words[1]} takes no {' '.join(stray)}"
        checked += 1
    assert checked >= 20  # the pages show many; a change in how they are found would check none


def test_real_frame_pages_are_written_from_the_committed_results_and_the_readme_quotes_them():
    """Found in 0.9.24: the README and doc/real_frames.md had quoted figures of five different
    versions side by side. The opening tables of doc/real_frames.md are written from the results
    files at build time, and the README's "On real frames" figures must be those files' own."""
    page = generated.render_real_frames()
    real = generated._pooled([r for r in json.loads(generated.REAL_FRAMES_RESULTS.read_text())["rows"]
                              if r["kind"] == "real" and r["setting"] == "after"])
    assert real["frames"] == 36 and "| `cracker_box` |" in page and "| 0.9-1.0 |" in page
    # the per-class rows add up to the totals
    rows = [line.split(" | ") for line in page.splitlines() if line.startswith("| `")]
    assert sum(int(r[1]) for r in rows) == real["class_truth"] and sum(int(r[3]) for r in rows) == real["right"]
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## On real frames"):]
    for part, whole in ((real["found"], real["truth"]), (real["right"], real["class_found"]),
                        (real["right"], real["named"])):
        assert generated._share(part, whole) in section, generated._share(part, whole)
    teach = generated.render_teach_real()
    draws1 = json.loads(generated.TEACH_RESULTS.read_text())["models"]["default"]["runs"]["add/draws1"]
    share = generated._share(draws1["taught"]["correct"], draws1["taught"]["matched"])
    assert share in teach and share in section
    # the pages that quote them in prose (limitations, the node's scores) quote the same run
    assert share in (ROOT / "doc" / "limitations.md").read_text()
    assert generated._share(real["right"], real["named"]) in (ROOT / "doc" / "node.md").read_text()


def test_one_version_in_setup_package_xml_and_changelog():
    setup = re.search(r'version="([^"]+)"', (ROOT / "setup.py").read_text()).group(1)
    package = re.search(r"<version>([^<]+)</version>", (ROOT / "package.xml").read_text()).group(1)
    changelog = re.search(r"^(\d+\.\d+\.\d+) \(\d{4}-\d\d-\d\d\)$", (ROOT / "CHANGELOG.rst").read_text(), re.M).group(1)
    from robot_classify import __version__  # what replay-eval's metrics.json records as the package's version

    assert setup == package == changelog == __version__


# What install_requires asks of PyPI that a rosdep key provides on a ROS machine (package.xml).
ROSDEP_KEYS = {"numpy": "python3-numpy", "scipy": "python3-scipy", "scikit-learn": "python3-sklearn",
               "opencv-python-headless": "python3-opencv", "tqdm": "python3-tqdm", "pyyaml": "python3-yaml",
               "scikit-image": "python3-skimage",
               "setuptools": None}  # setuptools: colcon's own, for every ament_python package


def test_a_ros_workspace_gets_every_runtime_dependency_from_rosdep_or_the_pip_line():
    """Found from outside: the workspace's pip line lacked onnxruntime and onnx, and the default
    model then ran on PyTorch at a third of the speed. Every install_requires entry is a rosdep key
    in package.xml or a name on getting_started's pip line."""
    import ast
    import xml.etree.ElementTree as ET

    call = next(n for n in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    requires = ast.literal_eval(next(kw.value for kw in call.keywords if kw.arg == "install_requires"))
    names = [re.split(r"[<>=!~\[ ;]", r)[0].lower() for r in requires]
    assert "torch" in names and "onnxruntime" in names
    keys = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    page = (ROOT / "doc" / "getting_started.md").read_text()
    section = page[page.index("## In a ROS 2 Jazzy workspace"):]
    pip_line = next(line for line in section.splitlines() if line.startswith("pip install "))
    on_pip_line = {re.split(r"[<>=]", w)[0].lower() for w in pip_line.split("#")[0].split()[2:]}
    for name in names:
        if name in ROSDEP_KEYS:
            assert ROSDEP_KEYS[name] is None or ROSDEP_KEYS[name] in keys, f"{name}: {ROSDEP_KEYS[name]} not in package.xml"
        else:
            assert name in on_pip_line, f"{name} (install_requires) is missing from the workspace's pip line"


def test_the_default_model_section_is_read_from_the_shipped_file():
    """Found in 0.9.27: training.md described a default of 8,161 examples, PCA-reduced features and
    generator 2 long after the file shipped held 8,179, none and generator 5."""
    from robot_classify.runtime.default_model import get_default_model

    model = get_default_model(device="cpu")
    page = generated.render_default_model()
    assert f"`{model.meta['name']}`" in page and f"`{model.features.extractor.kind}`" in page
    assert f"| examples | {model.meta['training']['n_samples']}: " in page
    assert "{include} generated/default_model.md" in (ROOT / "doc" / "training.md").read_text()
