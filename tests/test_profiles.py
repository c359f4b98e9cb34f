import pytest

from bnlib import profiles


def test_explicit_name_wins_over_environment(monkeypatch):
    monkeypatch.setenv("BNLIB_PROFILE", "cpu")
    assert profiles.resolve("smoke").name == "smoke"
    assert profiles.resolve(None).name == "cpu"


def test_hardware_default_without_environment(monkeypatch):
    monkeypatch.delenv("BNLIB_PROFILE", raising=False)
    monkeypatch.setattr(profiles.torch.cuda, "is_available", lambda: False)
    assert profiles.resolve().name == "cpu"
    monkeypatch.setattr(profiles.torch.cuda, "is_available", lambda: True)
    assert profiles.resolve().name == "gpu"
    assert profiles.resolve("paper").name == "paper"  # the paper's scale stays one parameter away


def test_gpu_profile_is_the_papers_model_over_the_start_of_training():
    gpu, paper = profiles.PROFILES["gpu"], profiles.PROFILES["paper"]
    assert (gpu.vgg_width, gpu.batch_size, gpu.n_train) == (paper.vgg_width, paper.batch_size, paper.n_train)
    assert 1_000 <= gpu.vgg_steps <= 5_000 < paper.vgg_steps  # the first few thousand of the paper's 15,000
    assert gpu.vgg_steps // gpu.probe_every >= 20  # enough probed steps for a curve
    assert (gpu.dln_steps, gpu.dln_points) == (paper.dln_steps, paper.dln_points)


def test_paper_profile_has_the_papers_settings():
    p = profiles.PROFILES["paper"]
    assert (p.vgg_width, p.batch_size, p.vgg_steps) == (1.0, 128, 15_000)
    assert (p.dln_steps, p.dln_points) == (10_000, 1000)


def test_unknown_profile_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown profile 'huge'.*allowed"):
        profiles.resolve("huge")
    monkeypatch.setenv("BNLIB_PROFILE", "nope")
    with pytest.raises(ValueError, match="BNLIB_PROFILE"):
        profiles.resolve()


def test_bad_values_are_rejected():
    smoke = profiles.PROFILES["smoke"]
    with pytest.raises(ValueError, match="vgg_steps"):
        smoke.replace(vgg_steps=0)
    with pytest.raises(ValueError, match="n_train"):
        smoke.replace(n_train=4)
    with pytest.raises(ValueError, match="unknown profile field"):
        smoke.replace(depth=3)


@pytest.mark.parametrize(("change", "message"), [
    ({"vgg_steps": 10.5}, r"profile field 'vgg_steps' must be an int >= 1, got 10.5 \(float\)"),
    ({"eval_every": True}, r"profile field 'eval_every' must be an int >= 1, got True \(bool\)"),
    ({"vgg_width": float("inf")}, r"profile field 'vgg_width' must be a finite number in \(0, 64\], got inf"),
    ({"vgg_width": float("nan")}, "profile field 'vgg_width' must be a finite number"),
    ({"n_test": 0}, "profile field 'n_test' must be None or an int >= 1, got 0"),
    ({"n_train": 16, "batch_size": 32}, r"'n_train' \(16\) must be >= batch_size \(32\), or None"),
    ({"name": ""}, "profile field 'name' must be a non-empty str"),
])
def test_every_profile_field_is_checked_up_front(change, message):
    with pytest.raises(ValueError, match=message):
        profiles.PROFILES["smoke"].replace(**change)
