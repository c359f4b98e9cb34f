import numpy as np
import pytest
import torch

from bnlib.execution import exact_numerics, provenance
from bnlib.probes.base import Probe, StepContext
from bnlib.train import RunConfig, batch_indices, build_task, train


def test_same_seed_same_run_on_cpu(tiny_vgg):
    a = train(tiny_vgg, progress=False, device="cpu")
    b = train(tiny_vgg, progress=False, device="cpu")
    assert torch.equal(a["step_loss"], b["step_loss"])
    assert a["evals"] == [dict(r) for r in b["evals"]]
    c = train(tiny_vgg.replace(seed=1), progress=False, device="cpu")
    assert not torch.equal(a["step_loss"], c["step_loss"])


def test_history_records_losses_and_evals_at_the_cadence(tiny_vgg):
    h = train(tiny_vgg, progress=False)
    assert torch.isfinite(h["step_loss"]).all() and len(h["step_loss"]) == tiny_vgg.steps
    assert [r["step"] for r in h["evals"]] == [0, 4, 8, 12]
    assert {"train_acc", "test_acc", "train_loss", "test_loss"} <= set(h["evals"][0])
    assert h["diverged_at"] is None and h["steps_done"] == tiny_vgg.steps
    assert h["dataset"] == "synthetic"


def test_vgg_learns_the_synthetic_task():
    config = RunConfig(model="vgg", norm="batch", lr=0.1, steps=40, batch_size=32, width=1 / 16,
                       dataset="synthetic", n_train=512, n_test=256, eval_every=20)
    h = train(config, progress=False)
    assert h["evals"][-1]["test_acc"] > 0.5 > h["evals"][0]["test_acc"]


@pytest.mark.parametrize("norm", ["none", "noisy"])
def test_resume_ends_exactly_where_an_uninterrupted_run_does(tiny_vgg, tmp_path, norm):
    config = tiny_vgg.replace(norm=norm)
    full = train(config, progress=False, checkpoint=tmp_path / "full.pt", checkpoint_every=3)
    ckpt = tmp_path / "resumed.pt"
    part = train(config, progress=False, checkpoint=ckpt, checkpoint_every=3, stop_after=7)
    assert part["steps_done"] == 7 and ckpt.exists()
    resumed = train(config, progress=False, checkpoint=ckpt, checkpoint_every=3)
    assert torch.equal(full["step_loss"], resumed["step_loss"])
    assert full["evals"] == resumed["evals"]


def test_interruption_keeps_a_checkpoint_and_resumes(tiny_dln, tmp_path):
    class Interrupt(Probe):
        name = "interrupt"

        def measure(self, ctx: StepContext) -> dict:
            if ctx.step == 9:
                raise KeyboardInterrupt
            return {}

    ckpt = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_dln, [Interrupt(every=1)], progress=False, checkpoint=ckpt, checkpoint_every=100)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["history"]["steps_done"] == 9
    assert torch.isfinite(saved["history"]["step_loss"][:9]).all()
    resumed = train(tiny_dln, progress=False, checkpoint=ckpt)
    uninterrupted = train(tiny_dln, progress=False)
    assert torch.equal(resumed["step_loss"], uninterrupted["step_loss"])


def test_divergence_is_recorded_with_its_step_not_raised():
    config = RunConfig(model="dln", norm="none", lr=1.0, steps=50, dln_points=64, dln_depth=6, dln_dim=4,
                       eval_every=10)
    h = train(config, progress=False)
    assert h["diverged_at"] is not None and 0 < h["diverged_at"] < 50
    assert not torch.isfinite(h["step_loss"][h["diverged_at"]])
    assert torch.isfinite(h["step_loss"][: h["diverged_at"]]).all()
    assert h["steps_done"] <= 50


def test_probe_hook_sees_gradients_before_the_update(tiny_dln):
    seen = []

    class Recorder(Probe):
        name = "recorder"

        def measure(self, ctx: StepContext) -> dict:
            grad = ctx.model.layer(1).weight.grad
            seen.append(ctx.step)
            return {"grad_norm": float(grad.norm()), "lr": ctx.lr}

    h = train(tiny_dln, [Recorder(every=5)], progress=False)
    assert seen == [0, 5, 10, 15]
    assert [r["step"] for r in h["probes"]["recorder"]] == seen
    assert all(r["grad_norm"] > 0 for r in h["probes"]["recorder"])


def test_batches_are_seeded_epoch_permutations():
    first = [batch_indices(100, 10, s, seed=0, device=torch.device("cpu")) for s in range(10)]
    assert sorted(torch.cat(first).tolist()) == list(range(100))  # one epoch covers every index once
    assert torch.equal(batch_indices(100, 10, 13, 0, torch.device("cpu")),
                       batch_indices(100, 10, 13, 0, torch.device("cpu")))


def test_same_seed_same_initialisation(tiny_vgg):
    a, b = build_task(tiny_vgg), build_task(tiny_vgg)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True))


@pytest.mark.parametrize(("change", "message"), [
    ({"lr": -0.1}, r"lr must be a finite number > 0, got -0.1"),
    ({"lr": float("nan")}, r"lr must be a finite number > 0, got nan"),
    ({"lr": "0.1"}, r"lr must be a finite number > 0, got '0.1' \(str\)"),
    ({"lr": True}, r"lr must be a finite number > 0, got True \(bool\)"),
    ({"steps": 0}, "steps must be an int >= 1, got 0"),
    ({"steps": 10.0}, r"steps must be an int >= 1, got 10.0 \(float\)"),
    ({"eval_every": True}, r"eval_every must be an int >= 1, got True \(bool\)"),
    ({"norm": "layer"}, "unknown norm 'layer'"),
    ({"model": "resnet"}, r"unknown model 'resnet' \(str\); allowed: \['vgg', 'dln', 'mlp'\]"),
    ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
    ({"momentum": -1.0}, r"momentum must be a finite number in \[0, 1\)"),
    ({"momentum": float("inf")}, "momentum must be a finite number"),
    ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0, got nan"),
    ({"seed": "abc"}, r"seed must be an int in \[0, 4294967295\], got 'abc' \(str\)"),
    ({"seed": 1.5}, "seed must be an int"),
    ({"seed": -1}, "seed must be an int in"),
    ({"seed": False}, r"seed must be an int .*\(bool\)"),
    ({"width": float("inf")}, "width must be a finite number in"),
    ({"width": 0}, r"width must be a finite number in \(0, 64\]"),
    ({"n_train": 0}, "n_train must be None or an int >= 1, got 0"),
    ({"n_train": -5}, "n_train must be None or an int >= 1"),
    ({"n_train": 100, "batch_size": 128}, r"batch_size \(128\) must be <= n_train \(100\)"),
    ({"n_test": 0}, "n_test must be None or an int >= 1"),
    ({"noise": {"n_mu": 0.5}}, "noise must be a bnlib.models.NoiseConfig"),
])
def test_bad_config_is_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**change)


def test_bad_values_elsewhere_are_clear_errors(tiny_vgg, tmp_path):
    from bnlib.models import NoiseConfig

    with pytest.raises(ValueError, match="noise r_sigma must be a finite number >= 0, got inf"):
        NoiseConfig(r_sigma=float("inf"))
    with pytest.raises(ValueError, match=r"batch_size \(2000\) must be <= the 1024 training images"):
        train(tiny_vgg.replace(n_train=None, batch_size=2000), progress=False)  # the synthetic split holds 1024
    with pytest.raises(ValueError, match="device must be None, 'cpu'"):
        train(tiny_vgg, device="gpu0", progress=False)
    with pytest.raises(ValueError, match="checkpoint_every must be an int >= 1"):
        train(tiny_vgg, checkpoint=tmp_path / "c.pt", checkpoint_every=0, progress=False)
    with pytest.raises(TypeError, match="config must be a bnlib.train.RunConfig"):
        train({"model": "vgg"}, progress=False)
    assert RunConfig(lr=1, seed=np.int64(3)).as_dict() == RunConfig(lr=1.0, seed=3).as_dict()


def test_bad_probe_cadence_is_a_clear_error():
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        Probe(every=0)


def test_dln_trains_full_batch_whatever_batch_size_says(tiny_dln):
    sizes = []

    class BatchSize(Probe):
        name = "batch_size"

        def measure(self, ctx: StepContext) -> dict:
            sizes.append(len(ctx.x))
            return {}

    train(tiny_dln.replace(batch_size=8), [BatchSize(every=7)], progress=False)
    assert sizes and all(n == tiny_dln.dln_points for n in sizes)


def _made_here() -> dict:
    """What a CPU run records of where and how it was made, read under the numerics train() sets."""
    with exact_numerics():
        return provenance(torch.device("cpu"))


def test_channels_last_runs_the_same_first_step_and_is_recorded(tiny_vgg):
    """channels_last is an execution option: same init, same batch, same first loss (later steps may part
    at the rounding level, as with another thread count), recorded in the history, not in the config."""
    plain = train(tiny_vgg, progress=False, channels_last=False)  # on by default since 0524991
    fast = train(tiny_vgg, progress=False, channels_last=True)
    threads, made = torch.get_num_threads(), _made_here()
    assert fast["execution"] == {"channels_last": True, "compile": False, "threads": threads, **made}
    assert plain["execution"] == {"channels_last": False, "compile": False, "threads": threads, **made}
    assert fast["config"] == plain["config"]
    assert float(fast["step_loss"][0]) == pytest.approx(float(plain["step_loss"][0]), rel=1e-5)
    assert torch.isfinite(fast["step_loss"]).all()


def test_compiled_forward_is_used_on_unprobed_steps_only(tiny_vgg, monkeypatch):
    """torch.compile wraps the training forward; a probed step runs the plain module, so hooks and
    double backward in probes see the eager model. (The compiler itself is stubbed: compiling on a
    2-core CPU takes a minute; python -m tools.bench --only speedups runs it for real.)"""
    calls = []

    def fake_compile(model):
        def forward(x):
            calls.append(True)
            return model(x)
        return forward

    monkeypatch.setattr(torch, "compile", fake_compile)

    class Seen(Probe):
        name = "seen"

        def measure(self, ctx: StepContext) -> dict:
            return {}

    h = train(tiny_vgg, [Seen(every=4)], progress=False, compile_model=True)
    assert h["execution"]["compile"] is True
    assert len(calls) == tiny_vgg.steps - len(h["probes"]["seen"])  # 12 steps, 3 probed
    reference = train(tiny_vgg, [Seen(every=4)], progress=False)
    assert torch.equal(h["step_loss"], reference["step_loss"])


def test_execution_options_from_the_environment(monkeypatch):
    from bnlib.execution import execution_options

    monkeypatch.setenv("BNLIB_CHANNELS_LAST", "1")
    monkeypatch.setenv("BNLIB_COMPILE", "0")
    assert execution_options() == {"channels_last": True, "compile": False}
    assert execution_options(channels_last=False) == {"channels_last": False, "compile": False}
    monkeypatch.setenv("BNLIB_COMPILE", "yes")
    with pytest.raises(ValueError, match="BNLIB_COMPILE must be 0 or 1"):
        execution_options()


def test_the_dln_ignores_execution_options(tiny_dln):
    """The VGG's options do not apply; the DLN's written-out step (bnlib.dln_step) is recorded instead."""
    assert train(tiny_dln, progress=False, channels_last=True, compile_model=True)["execution"] == {
        "channels_last": False, "compile": False, "threads": torch.get_num_threads(), "dln_fast": True,
        **_made_here()}


@pytest.mark.parametrize("model", ["vgg", "dln"])
def test_the_one_loss_is_what_train_evaluate_probes_and_the_bench_compute(model, tiny_vgg, tiny_dln, monkeypatch):
    """bnlib.losses defines each model's loss once: swap it there (here for twice the loss) and the training
    step, the evaluation, every probe (their ctx.loss_fn, the Hessian's eigenvalue) and the bench's bare step
    all change with it. Doubling is exact in floating point, so step 0 (same init, same batch) is exactly 2x."""
    from bnlib import losses
    from bnlib.probes.base import preserved
    from bnlib.probes.hessian import HessianProbe
    from tools.bench.loop import bare_step

    class Loss(Probe):
        name = "loss"

        def measure(self, ctx: StepContext) -> dict:
            with preserved(ctx.model):
                return {"ctx": ctx.loss.item(), "loss_fn": ctx.loss_fn(ctx.model, ctx.x, ctx.y).item()}

    def probed_run() -> dict:
        config = (tiny_vgg if model == "vgg" else tiny_dln).replace(steps=2)
        return train(config, [Loss(every=1), HessianProbe(every=2, iters=3)], progress=False)

    def bare_grad() -> torch.Tensor:
        task = build_task(tiny_vgg)
        bare_step(task.model, torch.optim.SGD(task.model.parameters(), lr=0.0), task.x_train[:8], task.y_train[:8])
        return next(task.model.parameters()).grad

    plain, plain_grad = probed_run(), bare_grad()
    one = losses.for_model(model)
    doubled = losses.Loss("doubled", lambda out, y, reduction: 2 * one.criterion(out, y, reduction), one.reduction)
    monkeypatch.setitem(losses.BY_MODEL, model, doubled)
    twice, twice_grad = probed_run(), bare_grad()
    assert float(twice["step_loss"][0]) == 2 * float(plain["step_loss"][0])
    losses_at_0 = [k for k in plain["evals"][0] if k.endswith("_loss")]
    assert losses_at_0 and all(twice["evals"][0][k] == 2 * plain["evals"][0][k] for k in losses_at_0)
    assert twice["probes"]["loss"][0] == {k: 2 * v if k != "step" else v for k, v in plain["probes"]["loss"][0].items()}
    assert twice["probes"]["hessian"][0]["top_eig"] == pytest.approx(2 * plain["probes"]["hessian"][0]["top_eig"],
                                                                      rel=1e-5)
    bench_grad = 2 * plain_grad if model == "vgg" else plain_grad  # the bench's bare step is the VGG's
    assert torch.equal(twice_grad, bench_grad)


def test_progress_bar_is_passed_in_and_the_loop_imports_no_ui(tiny_dln, tmp_path, capsys):
    """train draws the bar its caller passes (True: plain text, False: none); the choice of a widget bar lives
    with the caller (bnlib.runs, bnlib.widgets), so importing the loop loads no UI module."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    made = []

    class Bar:
        def __init__(self, **kwargs) -> None:
            self.kwargs, self.updates, self.closed = kwargs, 0, False
            made.append(self)

        def update(self) -> None:
            self.updates += 1

        def set_postfix(self, **kwargs) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    ckpt = tmp_path / "run.pt"
    train(tiny_dln, progress=Bar, checkpoint=ckpt, stop_after=7)
    train(tiny_dln, progress=Bar, checkpoint=ckpt)
    assert [(b.kwargs["total"], b.kwargs["initial"], b.kwargs["disable"], b.updates, b.closed) for b in made] == [
        (20, 0, False, 7, True), (20, 7, False, 13, True)]
    train(tiny_dln, progress=False)
    assert "dln/batch" not in capsys.readouterr().err
    train(tiny_dln, progress=True)
    assert "dln/batch lr=0.0001" in capsys.readouterr().err
    with pytest.raises(ValueError, match="progress must be True, False or a tqdm-like bar factory, got 'yes'"):
        train(tiny_dln, progress="yes")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    loaded = subprocess.run([sys.executable, "-c", "import sys, bnlib.train; print(sorted(sys.modules))"],
                            capture_output=True, text=True, check=True, env=env, cwd=root).stdout
    assert "'bnlib.train'" in loaded and "'bnlib.widgets'" not in loaded
