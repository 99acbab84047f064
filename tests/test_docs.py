"""The README and the docs site: short, figures taken from the committed results, no command that
names a path of one machine, links that resolve. (The site itself is built with `mkdocs build
--strict` in CI, which fails on a broken link or reference.)"""
import glob
import importlib.util
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
RESULTS = os.path.join(ROOT, "benchmarks", "results")
needs_results = pytest.mark.skipif(not os.path.isdir(RESULTS),
                                   reason="checks the source tree's benchmark results (absent beside a wheel's tests)")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _results_module():
    spec = importlib.util.spec_from_file_location("docs_results", os.path.join(ROOT, "docs", "results.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_is_short():
    assert len(_read(README).splitlines()) <= 150


@needs_results
def test_readme_table_is_the_committed_result():
    res = _results_module()
    want = res.headline_table(*(json.load(open(os.path.join(RESULTS, f"bench_detailed_{t}.json")))
                                for t in ("eval", "train")))
    assert want in _read(README), "README's table differs from benchmarks/results/bench_detailed_*.json: paste " \
                                  "docs/results.py's headline_table() of them"


@needs_results
def test_every_results_marker_names_a_committed_result():
    res = _results_module()
    for page in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True):
        for name in re.findall(r"<!-- results: ([A-Za-z0-9_.-]+) -->", _read(page)):
            assert res.table(RESULTS, name).count("\n") >= 3, (page, name)


def _texts():
    paths = [README, os.path.join(ROOT, "CHANGELOG.md"), os.path.join(ROOT, "ARCHITECTURE.md")]
    paths += glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    paths += glob.glob(os.path.join(ROOT, "examples", "*"))
    return [p for p in paths if os.path.isfile(p)]


def test_no_path_of_one_machine():
    # commands a user copies must work on their machine: no /work/..., /home/<someone>, /root
    bad = re.compile(r"(?<![\w.])(/work/|/home/\w+|/root/|/Users/\w+|C:\\\\)")
    found = [f"{os.path.relpath(p, ROOT)}: {m.group(0)}" for p in _texts() for m in bad.finditer(_read(p))]
    assert not found, found


@pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "setup.py")),
                    reason="checks links into the source tree (absent beside a wheel's tests)")
def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _read(README)):
        if "://" in target:
            continue
        assert os.path.exists(os.path.join(ROOT, target)), target
