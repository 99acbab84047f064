"""mkdocs hooks of the documentation build (run by `mkdocs build --strict` in CI):

* ``<!-- op-table -->`` in a page becomes the op table generated from the op registry
  (``fastprep.op_table()``), so the docs list exactly the ops the installed fastprep has, with
  each op's measured difference from torchvision v2 (``benchmarks/results/parity_ops.json``) and
  instructions per image (``benchmarks/results/instructions_ops.json``);
* ``<!-- results: NAME -->`` becomes the table of ``benchmarks/results/NAME.json`` and the
  benchmark plots are drawn from those files into ``docs/benchmarks/plots/`` before the files are
  collected (``docs/results.py``), so every figure on the benchmark page is the committed result
  of a command, never a number typed by hand or a hand-made image.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(os.path.dirname(HERE), "benchmarks", "results")
MARKER = re.compile(r"<!-- results: ([A-Za-z0-9_.-]+) -->")


def _results():
    sys.path.insert(0, HERE)
    try:
        import results
    finally:
        sys.path.remove(HERE)
    return results


def on_pre_build(config, **kwargs):
    _results().main(RESULTS, os.path.join(HERE, "benchmarks"))


def on_page_markdown(markdown, page, config, files, **kwargs):
    if "<!-- op-table -->" in markdown:
        import fastprep

        res = _results()
        markdown = markdown.replace("<!-- op-table -->", fastprep.op_table(res.op_costs(RESULTS), res.op_parity(RESULTS)))
    if MARKER.search(markdown):
        res = _results()
        markdown = MARKER.sub(lambda m: res.table(RESULTS, m.group(1)), markdown)
    return markdown
