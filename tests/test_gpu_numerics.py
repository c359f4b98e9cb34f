"""What a run does on a GPU, checked without one: CUDA is faked (torch.cuda.is_available patched; tensors stay on
the CPU). Inside every training step the numerics are true fp32 (no TF32) with cuDNN deterministic and not
autotuning, and the settings from before are back afterwards; the record says what made the run; the deep linear
network trains on the CPU even with a GPU present; the memory layout defaults to channels-last only on the CPU."""

from __future__ import annotations

import torch

from bnlib import execution, report, runs
from bnlib.probes.base import Probe, StepContext
from bnlib.profiles import PROFILES
from bnlib.train import run_device, train


def _settings() -> dict:
    return {label: getattr(owner, name) for label, owner, name, _ in execution._numerics()}


def _set(values: dict) -> None:
    for label, owner, name, _ in execution._numerics():
        setattr(owner, name, values[label])


class ReadsSettings(Probe):
    """Records the numerics settings in force during the step it measures."""

    name = "settings"
    seen: list[dict] = []

    def measure(self, ctx: StepContext) -> dict:
        type(self).seen.append(_settings())
        return {}


def _fake_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")


def test_every_step_runs_exact_fp32_and_deterministic_and_the_settings_come_back(tiny_vgg, monkeypatch):
    _fake_cuda(monkeypatch)
    wanted = {label: value for label, _, _, value in execution._numerics()}
    loose = {label: ("tf32" if isinstance(value, str) else not value) for label, value in wanted.items()}
    original = _settings()
    _set(loose)  # TF32 and autotuning, as a GPU session might have them
    try:
        ReadsSettings.seen = []
        history = train(tiny_vgg, [ReadsSettings(every=4)], device="cpu", progress=False)
        after = _settings()
    finally:
        _set(original)
    assert ReadsSettings.seen and all(seen == wanted for seen in ReadsSettings.seen)
    assert after == loose  # restored
    made = history["execution"]
    assert {label: made[label] for label in wanted} == wanted and made["torch"] == str(torch.__version__)
    assert made["device_name"] == execution.device_name(torch.device("cpu"))  # the device the run used


def test_the_settings_come_back_after_an_error_too(tiny_vgg, monkeypatch):
    before = _settings()

    class Fails(Probe):
        name = "fails"

        def measure(self, ctx: StepContext) -> dict:
            raise RuntimeError("a probe failed")

    try:
        train(tiny_vgg, [Fails(every=4)], progress=False)
    except RuntimeError:
        pass
    assert _settings() == before


def test_the_record_names_a_gpu_and_its_cudnn(monkeypatch):
    _fake_cuda(monkeypatch)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    made = execution.provenance(torch.device("cuda"))
    assert made["device_name"] == "Fake GPU" and made["cudnn"] == 91000


def test_the_dln_trains_on_the_cpu_beside_a_gpu(tiny_dln, tiny_vgg, cache, monkeypatch):
    _fake_cuda(monkeypatch)
    assert run_device(tiny_dln) == torch.device("cpu") and run_device(tiny_vgg) == torch.device("cuda")
    assert run_device(tiny_dln, "cuda") == torch.device("cuda")  # a forced device wins
    assert runs.run(tiny_dln, progress=False)["device"] == "cpu"


def test_channels_last_is_the_default_on_the_cpu_only(monkeypatch):
    monkeypatch.delenv("BNLIB_CHANNELS_LAST", raising=False)
    assert execution.execution_options(device=torch.device("cpu"))["channels_last"]
    assert not execution.execution_options(device=torch.device("cuda"))["channels_last"]
    monkeypatch.setenv("BNLIB_CHANNELS_LAST", "1")
    assert execution.execution_options(device=torch.device("cuda"))["channels_last"]  # asked for: given


def test_the_setup_line_names_the_devices_the_runs_were_made_on(tiny_vgg, cache):
    runs.run(tiny_vgg, progress=False)
    here = execution.device_name(torch.device("cpu"))
    assert runs.made_on([(tiny_vgg, [])]) == [here] and runs.made_on([(tiny_vgg.replace(seed=9), [])]) == []
    line = report.setup_summary(PROFILES["smoke"], "synthetic", (0,), ["Fake GPU", here])
    assert f"device: Fake GPU, {here} (where its runs trained)" in line
    assert f"device: {here} (this session)" in report.setup_summary(PROFILES["smoke"], "synthetic", (0,))


def test_on_a_gpu_deterministic_algorithms_are_on_inside_and_restored_after():
    before = torch.are_deterministic_algorithms_enabled()
    with execution.exact_numerics(torch.device("cuda")):
        inside_gpu = torch.are_deterministic_algorithms_enabled()
    with execution.exact_numerics(torch.device("cpu")):
        inside_cpu = torch.are_deterministic_algorithms_enabled()  # off on the CPU: it would NaN-fill new tensors
    assert inside_gpu and not inside_cpu
    assert torch.are_deterministic_algorithms_enabled() == before


def test_cublas_gets_a_fixed_workspace_before_any_cuda_call_and_the_record_says_so(monkeypatch):
    import os
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == execution.CUBLAS_WORKSPACE  # set at bnlib's import
    _fake_cuda(monkeypatch)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91000)
    with execution.exact_numerics(torch.device("cuda")):
        made = execution.provenance(torch.device("cuda"))
    assert made["deterministic_algorithms"] is True and made["cublas_workspace"] == execution.CUBLAS_WORKSPACE
    assert execution.provenance(torch.device("cpu"))["cublas_workspace"] is None
