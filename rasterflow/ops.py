"""Every op: importing this module registers each op module's stages in
:data:`~rasterflow.stages.STAGES` (a new op module is one more import here), and renders the
op reference ``docs/ops.md`` from their parameter declarations
(``python -m rasterflow.ops`` rewrites it)."""
import inspect
from pathlib import Path

from . import (stages, stages_arithm, stages_cnn, stages_dense, stages_imgproc,  # noqa: F401
               stages_layout, stages_merge, stages_nonlinear, stages_pooling)
from .params import TYPE_NAMES, allowed_values, default_text, params_of
from .stages import GRAPH_KEYS, STAGES

__all__ = ["STAGES", "OPS_DOC", "ops_markdown"]

OPS_DOC = Path(__file__).resolve().parent.parent / "docs" / "ops.md"


def _cell(text):
    return text.replace("|", "\\|").replace("``", "`")


def _op_section(op, cls):
    summary = " ".join(inspect.cleandoc(cls.__doc__).split())
    lines = [f"## `{op}`", "", _cell(summary), ""]
    if cls.arity > 1:
        lines += [f"Reads {cls.arity} streams (its `inputs`, in order).", ""]
    declared = params_of(cls).values()
    if not declared:
        return lines + ["No parameters.", ""]
    lines += ["| parameter | type | allowed | default | description |",
              "|---|---|---|---|---|"]
    for p in declared:
        lines.append(f"| `{p.name}` | {TYPE_NAMES[p.type]} | {_cell(allowed_values(p))} | "
                     f"{default_text(p)} | {_cell(p.doc)} |")
    return lines + [""]


def ops_markdown():
    """``docs/ops.md``: every op, its summary and its parameters, from the declarations."""
    graph_keys = ", ".join(f"`{key}`" for key in GRAPH_KEYS)
    lines = ["# Ops", "",
             "Every `op` a `[[stage]]` table may name, and the parameters it takes (besides "
             f"{graph_keys}, which place the stage in the graph). Generated from the "
             "parameter declarations in `rasterflow/stages*.py` by "
             "`python -m rasterflow.ops`; `tests/test_params.py` checks it is current.", ""]
    for op in sorted(STAGES):
        lines += _op_section(op, STAGES[op])
    return "\n".join(lines)


if __name__ == "__main__":
    # Run as a script, this file is module __main__, a second copy of rasterflow.ops: render
    # with the package's registry, which the stage modules filled.
    from rasterflow.ops import OPS_DOC as doc, ops_markdown as render
    doc.write_text(render())
    print(f"wrote {doc}")
