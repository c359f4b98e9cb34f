"""The DLN's written-out step (bnlib.dln_step) computes what the module path (autograd + torch.optim.SGD) does."""

import pytest
import torch

from bnlib import dln_step, plan
from bnlib.probes import activations, landscape
from bnlib.profiles import resolve
from bnlib.train import RunConfig, build_task, train

NORMS = dln_step.NORMS


def _config(norm: str, **changes) -> RunConfig:
    # at LR 3e-5 the 20 steps follow the gradient without amplifying rounding (at 1e-4 they part by 1e-5)
    return RunConfig(model="dln", norm=norm, lr=3e-5, steps=20, dln_points=64, dln_depth=6, dln_dim=4,
                     eval_every=5).replace(**changes)


@pytest.mark.parametrize("norm", NORMS)
def test_gradient_and_loss_match_autograd_in_float64(norm):
    """At float64 the two orders of operations agree to ~1e-15: any wrong term of a backward would show."""
    task = build_task(_config(norm))
    model, x, y = task.model.double(), task.x_train.double(), task.y_train.double()
    for p in model.parameters():  # off the init: BN/Lp gains and shifts away from 1 and 0
        p.data.add_(0.1 * torch.randn_like(p))
    reference = task.loss_fn(model, x, y)
    reference.backward()
    params = list(model.parameters())
    expected = torch.cat([p.grad.reshape(-1) for p in params])
    fast = dln_step.FastDLN(model, x, y, torch.optim.SGD(params, lr=1e-4))
    loss = fast.loss()
    got = torch.cat([fast.grad_of[id(p)].reshape(-1) for p in params])
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-12)
    assert (got - expected).abs().max() <= 1e-12 * expected.abs().max()
    assert float(got.abs().min()) < float(expected.abs().max())  # every part written (a zero check would miss)


@pytest.mark.parametrize("norm", NORMS)
def test_a_short_run_matches_the_autograd_run(norm, monkeypatch):
    """20 float32 steps: losses and the evaluations (eval mode: the running statistics) equal the autograd
    path's to float32 rounding. Measured on an AMD EPYC (AVX2): step losses within 3.2e-7, evaluations within
    2.9e-6 (l1: its eval loss sums squares of outputs through six normalised layers); a wrong term of the
    backward is caught at 1e-12 by the float64 test above."""
    config = _config(norm)
    fast = train(config, progress=False)
    monkeypatch.setenv(dln_step.ENV, "0")
    plain = train(config, progress=False)
    assert fast["execution"]["dln_fast"] is True and plain["execution"]["dln_fast"] is False
    torch.testing.assert_close(fast["step_loss"], plain["step_loss"], rtol=2e-6, atol=0)
    assert [r["step"] for r in fast["evals"]] == [r["step"] for r in plain["evals"]]
    for a, b in zip(fast["evals"], plain["evals"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    assert not torch.equal(fast["step_loss"], fast["step_loss"][0].expand(config.steps))  # it did train


@pytest.mark.parametrize("norm", ["batch", "linf"])
def test_weights_and_statistics_after_steps_match(norm, monkeypatch):
    """The whole state after a few steps (parameters, BN/Lp running statistics, the BN batch count)."""
    config = _config(norm, steps=8)
    states = []
    for flag in ("1", "0"):
        monkeypatch.setenv(dln_step.ENV, flag)
        task = build_task(config)
        optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr)
        fast = dln_step.for_run(config, task, optimizer)
        assert (fast is not None) == (flag == "1")
        for _ in range(config.steps):
            if fast is not None:
                fast.step()
            else:
                optimizer.zero_grad()
                task.loss_fn(task.model, task.x_train, task.y_train).backward()
                optimizer.step()
        states.append(task.model.state_dict())
    for name, value in states[0].items():
        torch.testing.assert_close(value, states[1][name], rtol=2e-6, atol=1e-7, msg=name)


def test_runs_are_bitwise_reproducible_and_probes_leave_them_alone():
    """Same run twice: equal bits; with the activation and landscape probes (each probed step also runs the
    module path, BN statistics restored after it): equal bits again."""
    config = _config("batch", steps=12)
    a, b = train(config, progress=False), train(config, progress=False)
    assert torch.equal(a["step_loss"], b["step_loss"]) and a["evals"] == b["evals"]
    smoke = resolve("smoke").replace(dln_probe_every=5)
    probes = activations.dln_probes(smoke) + landscape.dln_probes(smoke)
    deep = config.replace(dln_depth=25)  # the activation probe reads layer 24
    probed, plain = train(deep, probes, progress=False), train(deep, progress=False)
    assert torch.equal(probed["step_loss"], plain["step_loss"]) and probed["evals"] == plain["evals"]
    assert len(probed["probes"]["activations"]) == len(probed["probes"]["landscape"]) == 3


@pytest.mark.parametrize("change", [{"norm": "noisy"}, {"norm": "noise_only"}, {"momentum": 0.9},
                                    {"weight_decay": 1e-3}])
def test_other_runs_train_through_autograd(change):
    assert train(_config("batch").replace(steps=3, **change), progress=False)["execution"]["dln_fast"] is False


def test_a_run_whose_loss_is_another_trains_through_autograd():
    """The written-out step implements the sum of squared errors: given any other loss (here twice it) the run
    falls back to autograd rather than train on a copy of the loss that no longer is the run's."""
    config = _config("batch")
    task = build_task(config)
    optimizer = torch.optim.SGD(task.model.parameters(), lr=config.lr)
    assert dln_step.for_run(config, task, optimizer) is not None
    one = task.loss_fn
    task.loss_fn = lambda model, x, y: 2 * one(model, x, y)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    assert dln_step.for_run(config, task, optimizer) is None
    assert all(torch.equal(v, before[k]) for k, v in task.model.state_dict().items())  # the check left no trace


def test_the_switch_is_checked(monkeypatch):
    monkeypatch.setenv(dln_step.ENV, "fast")
    with pytest.raises(ValueError, match="BNLIB_DLN_FAST must be 0 or 1"):
        dln_step.enabled()


def test_packing_keeps_the_models_tensors():
    """The parameters and buffers stay the same objects with the same values, now views of one tensor."""
    task = build_task(_config("batch"))
    model = task.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    fast = dln_step.FastDLN(model, task.x_train, task.y_train, torch.optim.SGD(params, lr=1e-4))
    assert list(model.parameters()) == params
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    fast.flat.zero_()
    assert all(float(p.detach().abs().sum()) == 0 for p in model.parameters())


def test_the_plan_times_the_step_train_runs_and_a_gpu_estimate_times_it_on_the_cpu(monkeypatch):
    """bnlib.plan measures the written-out step (what train() runs on the CPU); a GPU estimate does the same for the
    DLN, which trains on the CPU beside the GPU: no counted autograd step, no GPU throughput. Operation counts,
    not times: exact."""
    config = _config("none")

    def ops(work) -> float:
        return float(plan.count(work)[1])

    written_out = plan.measure(config, steps=1, device="cpu", meter=ops)
    autograd = plan.measure(config, steps=1, device="cpu", meter=ops, written_out=False)
    assert 0 < written_out.step_s < autograd.step_s
    monkeypatch.setattr(plan, "timer", ops)  # measure's default meter, read at call time
    seen = {}
    real = plan.measure

    def spy(config, probes=(), **kwargs):
        seen.update(kwargs)
        return real(config, probes, steps=1, device=kwargs.get("device"), meter=ops)

    monkeypatch.setattr(plan, "measure", spy)
    estimate = plan.assumed_cost(config, [], flops_per_s=1e30, op_s=1.0)
    assert seen == {"device": "cpu"} and estimate.step_s == written_out.step_s
