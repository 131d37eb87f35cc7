"""The package mapping in pyproject.toml covers every package folder on disk."""
import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    on_disk = set()
    for name, folder in mapping.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            on_disk.add(".".join([name, *rel.parts]))
    # Subfolders of a mapped folder are subpackages of its import name.
    assert on_disk == listed


def test_mapped_imports_resolve():
    import rasterflow.boards
    import rasterflow.golden
    import rasterflow.hdl
    import rasterflow.sim
    for module, folder in ((rasterflow.hdl, "hdl"), (rasterflow.golden, "golden"),
                           (rasterflow.sim, "sim"), (rasterflow.boards, "boards")):
        assert Path(module.__file__).resolve().parent == ROOT / folder


def imported_modules(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")


def test_golden_never_imports_hardware_or_tools():
    """Golden models are pure numpy: an HDL import would make the bit-exact check circular."""
    for path in (ROOT / "golden").rglob("*.py"):
        for module in imported_modules(path):
            top = module.lstrip(".").split(".")[0]
            assert top not in ("amaranth", "cocotb", "cv2", "hdl", "sim", "boards", "tflite"), \
                f"{path.name} imports {module}"
            assert not module.startswith(".."), f"{path.name} imports {module}"
