"""Every tensor bnlib creates says where it lives: each torch factory call passes a device, or is listed here with
why the CPU is right for it (on a GPU, a tensor made on the CPU by mistake either fails far from its cause or
silently moves data every step). A new call without a device fails until it is given one or listed."""

from __future__ import annotations

import ast
from pathlib import Path

import bnlib

PACKAGE = Path(bnlib.__file__).resolve().parent
FACTORIES = {"zeros", "ones", "empty", "full", "arange", "randn", "rand", "randint", "randperm", "tensor", "linspace",
             "eye", "as_tensor"}
ON_THE_CPU = {  # module: function -> why no device
    "data:synthetic_uint8": "the synthetic set is drawn once on the CPU from a CPU generator, then moved with the rest",
    "data:synthetic_uint8.split": "as above",
    "data:regression_data": "the DLN's data is drawn on the CPU from a CPU generator (the same on every device)",
    "experiments/landscape:hessian_check": "float64 check of the Lanczos probe against a full Hessian, on the CPU",
    "experiments/later:_tiny_mlp": "chapter 7's float64 checks of the Hessian probe's new parts, on the CPU",
    "experiments/later:top_k_check": "as above",
    "experiments/later:running_check": "as above",
    "experiments/later:init_gradients": "gradients at initialisation: one batch through a fresh MLP, on the CPU",
    "models:NoisyBatchNorm.__init__": "a module's parameters and buffers are made on the CPU; .to(device) moves them",
    "models:LpNorm.__init__": "as above",
    "plan:matmul_rate": "measures this CPU's matrix-product rate",
    "probes/activations:unit_choice": "which units to record: indices drawn from a CPU generator",
    "probes/activations:summarize": "histogram counts kept in the record, which lives on the CPU",
    "probes/hessian:lanczos": "the start vector is drawn from a seeded CPU generator, then moved (.to(device))",
    "theory:random_problem.r": "Section 4's checks run in float64 on the CPU",
    "theory:random_problem": "as above",
    "theory:observation43": "as above",
    "theory:lemma45": "as above",
    "train:_epoch_permutation": "the batch order is drawn from a CPU generator (the same on every device), then moved",
    "train:_start": "a run's history (step losses and accuracies) lives on the CPU; the device-side copies pass one",
}


def calls_without_device(path: Path, root: Path = PACKAGE) -> list[str]:
    """'module:function' of each torch factory call in `path` (a module under `root`) without a device= keyword."""
    module = path.relative_to(root).with_suffix("").as_posix()
    found: list[str] = []

    def visit(node: ast.AST, where: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = where + [child.name] if isinstance(child, (ast.FunctionDef, ast.ClassDef)) else where
            func = getattr(child, "func", None)
            if (isinstance(child, ast.Call) and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    and func.value.id == "torch" and func.attr in FACTORIES
                    and not any(k.arg == "device" for k in child.keywords)):
                found.append(f"{module}:{'.'.join(where) or '<module>'}")
            visit(child, inner)

    visit(ast.parse(path.read_text()), [])
    return found


def test_every_tensor_factory_passes_a_device_or_says_why_not():
    found = {place for path in sorted(PACKAGE.rglob("*.py")) for place in calls_without_device(path)}
    unlisted = sorted(found - set(ON_THE_CPU))
    assert not unlisted, f"torch factory calls without device=, not listed: {unlisted}"
    assert not set(ON_THE_CPU) - found, f"listed, but no such call any more: {sorted(set(ON_THE_CPU) - found)}"


def test_the_scan_sees_a_call_without_a_device(tmp_path):
    (tmp_path / "m.py").write_text("import torch\ndef f(d):\n    return torch.zeros(3), torch.ones(2, device=d)\n")
    assert calls_without_device(tmp_path / "m.py", tmp_path) == ["m:f"]
