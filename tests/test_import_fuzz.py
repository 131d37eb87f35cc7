"""Fuzzing the ``.tflite`` importer: damaged models are refused with the tool's own errors.

Each example takes a bundled fixture model (``tests/data/tflite``) and damages it — bytes
flipped, inserted or deleted, the file truncated — or is a string of random bytes, some
behind a valid ``TFL3`` file identifier so that parsing goes past the first check.
:func:`load_tflite` must then either import the model or raise :class:`ModelError`, and the
CLI's ``rasterflow import`` must exit 0 (written spec + sidecar) or 2 (``error: model ...``,
nothing written); any other exception is a bug. Every load runs under an alarm so that a
flatbuffer whose lengths send the parser into a huge loop fails the test instead of hanging
the suite.
"""
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from rasterflow.cli import main
from rasterflow.tflite_import import ModelError, load_tflite

FIXTURES = sorted((Path(__file__).parent / "data" / "tflite").glob("*.tflite"))
FIXTURE_BYTES = {path.name: path.read_bytes() for path in FIXTURES}
#: Seconds one import may take before the example counts as a hang.
HANG_SECONDS = 10
FUZZ_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow,
                                                HealthCheck.data_too_large])


class ImportHung(Exception):
    pass


@contextmanager
def hang_guard(seconds=HANG_SECONDS):
    def on_alarm(signum, frame):
        raise ImportHung(f"import did not finish within {seconds} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def mutation(draw, size):
    """One edit of a byte string of length ``size``: ``(kind, position, payload)``."""
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "overwrite"]))
    position = draw(st.integers(0, size - 1))
    if kind == "flip":
        return kind, position, draw(st.integers(1, 255))
    if kind in ("insert", "overwrite"):
        return kind, position, draw(st.binary(min_size=1, max_size=8))
    if kind == "delete":
        return kind, position, draw(st.integers(1, 16))
    return kind, position, None


def apply_mutation(data, edit):
    kind, position, payload = edit
    if kind == "flip":
        return data[:position] + bytes([data[position] ^ payload]) + data[position + 1:]
    if kind == "insert":
        return data[:position] + payload + data[position:]
    if kind == "overwrite":
        return data[:position] + payload + data[position + len(payload):]
    if kind == "delete":
        return data[:position] + data[position + payload:]
    return data[:position]


@st.composite
def damaged_models(draw):
    name = draw(st.sampled_from(sorted(FIXTURE_BYTES)))
    data = FIXTURE_BYTES[name]
    for _ in range(draw(st.integers(1, 4))):
        if data:
            data = apply_mutation(data, draw(mutation(len(data))))
    return data


random_models = st.one_of(
    st.binary(max_size=256),
    # Past the identifier check: a root offset and the "TFL3" identifier, then garbage.
    st.binary(min_size=4, max_size=4).flatmap(
        lambda root: st.binary(max_size=512).map(lambda rest: root + b"TFL3" + rest)),
)


def load_or_refuse(data):
    """Import ``data`` as a model file; return the model or the ModelError raised."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed.tflite"
        path.write_bytes(data)
        with hang_guard():
            try:
                return load_tflite(path)
            except ModelError as error:
                assert str(error).startswith(f"{path}: "), error
                return error


@FUZZ_SETTINGS
@given(damaged_models())
def test_damaged_fixture_is_imported_or_refused(data):
    load_or_refuse(data)


@FUZZ_SETTINGS
@given(random_models)
def test_random_bytes_are_imported_or_refused(data):
    load_or_refuse(data)


@settings(FUZZ_SETTINGS, max_examples=25)
@given(damaged_models())
def test_cli_import_of_damaged_model_exits_cleanly(data):
    with tempfile.TemporaryDirectory() as tmp:
        model, spec = Path(tmp) / "fuzzed.tflite", Path(tmp) / "out" / "spec.toml"
        model.write_bytes(data)
        with hang_guard():
            status = main(["import", str(model), "-o", str(spec)])
        assert status in (0, 2)
        written = sorted(p.name for p in spec.parent.glob("*")) if spec.parent.exists() else []
        assert written == (["spec.npz", "spec.toml"] if status == 0 else [])


@pytest.mark.parametrize("name", sorted(FIXTURE_BYTES))
def test_undamaged_fixture_imports(name):
    """The fuzzer's starting points are valid models (else every mutation is trivially bad)."""
    assert not isinstance(load_or_refuse(FIXTURE_BYTES[name]), ModelError)
