"""The ``sweep`` subcommand: build every combination of some spec fields for one board.

The CLI owner calls :func:`add_sweep_command` with its argparse subparsers; the subcommand
sets ``func`` so that ``args.func(args)`` runs it and returns the exit status (0 when every
combination has a row, even rows with errors; usage errors raise
:class:`~rasterflow.sweep.SweepError`, which the CLI reports with status 2).
"""
from pathlib import Path

__all__ = ["add_sweep_command"]


def cmd_sweep(args):
    from .sweep import parse_vary, run_sweep, write_outputs

    axes = [parse_vary(text) for text in args.vary]
    client = None
    if args.scheduler:
        from dask.distributed import Client
        client = Client(args.scheduler)
    try:
        result = run_sweep(args.spec, args.board, axes, client=client, workers=args.workers,
                           cache_dir=args.cache_dir, progress=not args.quiet)
    finally:
        if client is not None:
            client.close()
    written = write_outputs(result, args.out)
    failed = sum(1 for row in result.rows if row["error"])
    print(f"sweep: {len(result.rows)} designs on {result.board}, {result.built} built, "
          f"{result.cached} cached, {failed} with errors")
    for path in written:
        print(f"wrote {path}")
    return 0


def add_sweep_command(subparsers):
    p = subparsers.add_parser(
        "sweep", help="build every combination of some spec fields (Dask) and tabulate them")
    p.add_argument("spec")
    p.add_argument("--board", required=True, help="board name (see `rasterflow boards`)")
    p.add_argument("--vary", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a field (input.FIELD, stage[i].FIELD, or FIELD for every stage that "
                        "has it) and its values as TOML (3 or \"a\" or [[1,2,1]]); repeat "
                        "for more fields")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="an existing Dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=int, help="local cluster workers (default: CPU count)")
    p.add_argument("--out", default="sweep", type=Path,
                   help="folder for sweep.json, sweep.md, sweep.png (default: sweep)")
    p.add_argument("--cache-dir", type=Path,
                   help="build cache (default: ~/.cache/rasterflow/builds)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)
