"""The GitHub workflows (.github/workflows) are valid, thin, and publish what the README says.

They cannot run here (no GitHub): they are validated against the workflow schema that check-jsonschema ships
(actionlint is on PyPI only as a source package that downloads its binary, which this offline machine cannot),
and every command they run is a make target or script that exists and that the tests exercise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECK = [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
ALLOWED = [r"make (\w+)", r"\.ci/run", r"apt-get update -q && apt-get install -y -q dataset-fashion-mnist"]


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_workflows_exist_and_match_the_github_workflow_schema():
    assert {p.name for p in WORKFLOWS} == {"publish.yml", "check.yml"}
    result = subprocess.run([*CHECK, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    text = (ROOT / ".github" / "workflows" / "check.yml").read_text()
    broken.write_text(text.replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04"))
    assert subprocess.run([*CHECK, str(broken)], capture_output=True).returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_command_is_a_make_target_or_the_ci_script(path):
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for job in _load(path)["jobs"].values():
        for step in job.get("steps", []):
            if "run" not in step:
                continue
            command = step["run"].strip()
            match = next((re.fullmatch(p, command) for p in ALLOWED if re.fullmatch(p, command)), None)
            assert match, f"{path.name}: {command!r} is neither a make target nor .ci/run"
            if match.groups():
                assert match.group(1) in targets, f"{path.name}: no make target {match.group(1)!r}"


def test_the_site_names_its_data_and_keeps_its_run_cache():
    publish = _load(ROOT / ".github" / "workflows" / "publish.yml")
    triggers = publish[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["workflow_dispatch"]["inputs"]["dataset"]["options"] == ["fashion-mnist", "cifar10"]
    build = publish["jobs"]["build"]
    assert build["env"]["BNLIB_PROFILE"] == "cpu"
    assert build["env"]["BNLIB_DATASET"] == "${{ inputs.dataset || 'fashion-mnist' }}", "never a silent default"
    steps = {s.get("uses", "").split("@")[0]: s for s in build["steps"]}
    restore, save = steps["actions/cache/restore"]["with"], steps["actions/cache/save"]["with"]
    assert "github.run_id" in restore["key"] and restore["key"] == save["key"], "one new entry per run"
    assert restore["key"].startswith(restore["restore-keys"]), "restores the newest earlier entry"
    assert steps["actions/cache/save"]["if"] == "always()"
    assert steps["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    deploy = publish["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]


def test_the_pull_request_check_runs_what_ci_runs():
    check = _load(ROOT / ".github" / "workflows" / "check.yml")
    assert "pull_request" in check[True]
    assert [s.get("run") for s in check["jobs"]["test"]["steps"] if "run" in s] == [".ci/run"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
