"""The parallel harness reruns a run once when a worker dies by a signal, and never otherwise."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from torch.multiprocessing import ProcessExitedException, ProcessRaisedException  # noqa: E402

from tests.harness import parallel  # noqa: E402


def _runs(monkeypatch, outcomes: list) -> list[int]:
    """Replace the process spawner with one that plays ``outcomes`` (an exception to raise or a
    result to return), one per call; returns the list of calls made."""
    calls: list[int] = []

    def spawn(job, world):
        calls.append(world)
        out = outcomes[len(calls) - 1]
        if isinstance(out, Exception):
            raise out
        return out

    monkeypatch.setattr(parallel, "_spawn", spawn)
    return calls


def _signal_death() -> ProcessExitedException:
    return ProcessExitedException("process 1 terminated with signal SIGABRT", 1, 99, -6, "SIGABRT")


def _measure():
    return parallel.measure_parallel(parallel.CASES["mixtral"], 2, 8, 2, "tp")


def test_a_signal_death_is_run_again_once(monkeypatch, capsys):
    calls = _runs(monkeypatch, [_signal_death(), [{"total": 1}, {"total": 2}]])
    assert _measure() == [{"total": 1}, {"total": 2}]
    assert len(calls) == 2
    assert "SIGABRT" in capsys.readouterr().err


def test_a_second_signal_death_is_not_run_again(monkeypatch):
    calls = _runs(monkeypatch, [_signal_death(), _signal_death(), []])
    with pytest.raises(ProcessExitedException):
        _measure()
    assert len(calls) == 2


@pytest.mark.parametrize(
    "error",
    [
        ProcessExitedException("process 0 terminated with exit code 1", 0, 99, 1),
        ProcessRaisedException("AssertionError in the worker", 0, 99),
    ],
)
def test_an_exit_status_or_an_exception_is_not_run_again(monkeypatch, error):
    calls = _runs(monkeypatch, [error, []])
    with pytest.raises(type(error)):
        _measure()
    assert len(calls) == 1
