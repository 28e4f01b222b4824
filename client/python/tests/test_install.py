"""The package as a user installs it: pip into a venv (with Debian's
setuptools and wheel, no PyPI), then the README's Python examples run from
that venv against a real haspd, with only the import changed."""

import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(HERE)
README = os.path.join(os.path.dirname(os.path.dirname(PACKAGE)), "README.md")


def _readme_python_blocks():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    try:
        import setuptools  # noqa: F401
        import wheel  # noqa: F401
    except ImportError:
        pytest.skip("needs python3-setuptools and python3-wheel to build without PyPI")
    where = str(tmp_path_factory.mktemp("venv"))
    r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", where],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.skip("no venv module (python3-venv): %s" % r.stderr.strip())
    py = os.path.join(where, "bin", "python")
    # A copy: a build without isolation writes into the tree it builds.
    source = os.path.join(where, "src")
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", "tests", "bench"))
    r = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                        "--no-deps", "-q", source], capture_output=True, text=True,
                       timeout=300, cwd=where)
    assert r.returncode == 0, r.stdout + r.stderr
    return py


def test_pip_installs_the_package_into_a_venv(venv, daemon, workdir):
    r = subprocess.run([venv, "-c", "import hasp, hasp.aio; print(hasp.__file__)"],
                       capture_output=True, text=True, cwd=workdir, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "site-packages" in r.stdout and PACKAGE not in r.stdout


def test_the_readmes_examples_run_from_the_venv(venv, daemon, workdir):
    blocks = _readme_python_blocks()
    assert len(blocks) >= 3, "the README's Python section lost its examples"
    for code in blocks:
        r = subprocess.run([venv, "-c", code], capture_output=True, text=True, cwd=workdir,
                           timeout=60)
        assert r.returncode == 0, code + r.stdout + r.stderr
    with open(os.path.join(workdir, "counter.txt")) as f:
        assert f.read() == "3"
    with open(os.path.join(workdir, "high_ground.txt")) as f:
        assert f.read() == "You were the chosen one."
