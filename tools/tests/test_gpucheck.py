"""tools/gpucheck.py on the CPU: every section that can run here runs and says ok, the CUDA-only ones say so, and
the JSON is written after each section. Small widths and steps (a GPU machine runs the full-width defaults)."""

from __future__ import annotations

import json

import pytest

from bnlib import book
from tools import gpucheck


def test_every_section_runs_on_the_cpu_or_says_it_needs_cuda(tmp_path, monkeypatch, capsys):
    smoke = book.book_plan(book.common("smoke", "synthetic"))
    few = [next(r for r in smoke if r[0].model == "vgg"), next(r for r in smoke if r[0].model == "dln")]
    monkeypatch.setattr(book, "book_plan", lambda setup: few)  # two of the smoke book's runs: the section's logic
    out = tmp_path / "check.json"
    code = gpucheck.main(["--device", "cpu", "--width", "0.0625", "--steps", "1", "--out", str(out)])
    record = json.loads(out.read_text())
    status = {name: section["status"] for name, section in record["sections"].items()}
    assert code == 0, status
    assert list(status) == list(gpucheck.SECTIONS)
    assert status["cpu vs cuda"] == status["hessian tf32"] == gpucheck.NO_CUDA
    assert all(s == "ok" for n, s in status.items() if n not in ("cpu vs cuda", "hessian tf32"))
    assert record["sections"]["repeat and resume"]["bitwise"] == {"rerun": True, "resume": True, "probes": True}
    assert set(record["sections"]["full width"]["norms"]) == set(gpucheck.NORMS)
    assert 0 <= record["sections"]["lanczos share"]["share_outside_hvps"] <= 1
    assert "smoke book" in capsys.readouterr().out


def test_asking_for_cuda_without_it_runs_nothing_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(gpucheck.torch.cuda, "is_available", lambda: False)
    out = tmp_path / "check.json"
    assert gpucheck.main(["--device", "cuda", "--out", str(out), "--only", "full width"]) == 0
    assert json.loads(out.read_text())["sections"]["full width"]["status"] == gpucheck.NO_CUDA


@pytest.mark.parametrize("bad", [["--device", "tpu"], ["--only", "everything"]])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(SystemExit):
        gpucheck.main(bad)
