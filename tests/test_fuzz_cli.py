"""A bounded sample of the command-line fuzzer (``tools/fuzz_cli.py``): generated invocations and
config files must give no traceback, no hang, only strict JSON and no broken invariant.

CI runs a few hundred invocations; ``python tools/fuzz_cli.py`` runs ten thousand.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_cli", ROOT / "tools" / "fuzz_cli.py")
fuzz_cli = importlib.util.module_from_spec(_spec)
sys.modules["fuzz_cli"] = fuzz_cli
_spec.loader.exec_module(fuzz_cli)


def _findings(report) -> str:
    return "\n".join(
        f"{f['kind']}: {' '.join(a[:60] for a in f['argv'])}\n{f['detail'][-600:]}" for f in report.findings
    )


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_generated_invocation_in_process(tmp_path_factory, seed):
    """One generated invocation (and its equivalent spelling, if any), run in-process."""
    case = fuzz_cli.generate(random.Random(seed), installed_share=0.0)
    if case.argv[:1] in (["derive"], ["plot"]):  # the slow writers run in the sample below
        return
    workdir = tmp_path_factory.mktemp("fuzz")
    fuzz_cli._write_files(case, workdir)
    case.argv = argv = [str(workdir / a) if a.startswith("cfg") else a for a in case.argv]
    if case.twin:
        case.twin = [str(workdir / a) if a.startswith("cfg") else a for a in case.twin]
    code, out, err, error = fuzz_cli.run_inprocess(argv)
    twin = fuzz_cli.run_inprocess(case.twin) if case.twin and error is None else None
    report = fuzz_cli.Report()
    fuzz_cli.check(report, fuzz_cli.Result(case, code, out, err, error, 0.0), twin)
    assert not report.findings, _findings(report)


@pytest.mark.slow
def test_fuzz_sample_with_watchdog():
    """A few hundred invocations through the harness itself: worker processes and the hang watchdog."""
    report = fuzz_cli.fuzz(n=200, seed=11, workers=2, timeout=60.0, installed_share=0.0, attacks=False)
    assert report.invocations >= 200
    assert (report.tracebacks, report.hangs, report.invalid_json, report.invariant_breaks) == (0, 0, 0, 0), _findings(
        report
    )


def test_the_checks_catch_what_they_should():
    """The harness's own checks flag a traceback, invalid JSON and a broken invariant."""
    case = fuzz_cli.Case(["memory", "gpt2", "--json"], "shipped")
    report = fuzz_cli.Report()
    fuzz_cli.check(report, fuzz_cli.Result(case, None, "", "", "Traceback ...\nTypeError: x", 0.1), None)
    fuzz_cli.check(report, fuzz_cli.Result(case, 0, '{"total": Infinity}', "", None, 0.1), None)
    per = {"weights": 1, "gradients": 1, "master": 1, "optimizer": 1, "states": 5, "activations": 1}
    per |= {"transient": 0, "peak": 3}
    fuzz_cli.check(report, fuzz_cli.Result(case, 0, fuzz_cli.json.dumps({"per_device": per}), "", None, 0.1), None)
    fuzz_cli.check(report, fuzz_cli.Result(case, None, "", "", "HANG", 30), None)
    assert (report.tracebacks, report.invalid_json, report.hangs) == (1, 1, 1)
    assert report.invariant_breaks >= 2  # states is not the sum; the peak is below the states
