"""The one skip-or-fail rule for missing servers, programs and packages, and finding shared/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metricskit.testing.require import missing, require_module
from tests.services import binary, shared_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["developer", "ci"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "ci":
        monkeypatch.setenv("METRICSKIT_REQUIRE_SERVICES", "1")
    else:
        monkeypatch.delenv("METRICSKIT_REQUIRE_SERVICES", raising=False)
    return str(request.param)


def _outcome(mode: str) -> type[BaseException]:
    return pytest.fail.Exception if mode == "ci" else pytest.skip.Exception


def test_missing_skips_for_a_developer_and_fails_in_ci(mode: str) -> None:
    with pytest.raises(_outcome(mode), match="the reason"):
        missing("the reason")


def test_a_missing_module_is_never_a_silent_skip_in_ci(mode: str) -> None:
    with pytest.raises(_outcome(mode), match=r"no_such_module_xyz.*pip install it"):
        require_module("no_such_module_xyz", "pip install it")
    assert require_module("json").dumps([1]) == "[1]"


def test_a_missing_program_is_never_a_silent_skip_in_ci(mode: str) -> None:
    with pytest.raises(_outcome(mode), match="no-such-program-xyz is not installed"):
        binary("no-such-program-xyz")


def _reference(folder: Path) -> Path:
    (folder / "bench").mkdir(parents=True)
    (folder / "bench" / "gen_dataset.py").write_text("")
    return folder


def test_shared_is_found_beside_a_ci_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CI: a fresh clone in some folder, with a copy of shared/ beside it
    monkeypatch.delenv("METRICSKIT_SHARED_DIR", raising=False)
    shared = _reference(tmp_path / "shared")
    assert shared_dir(tmp_path / "clone") == shared
    # a worktree a level deeper finds the same folder
    assert shared_dir(tmp_path / "wt" / "branch") == shared


def test_shared_dir_env_var_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _reference(tmp_path / "shared")
    elsewhere = _reference(tmp_path / "elsewhere")
    monkeypatch.setenv("METRICSKIT_SHARED_DIR", str(elsewhere))
    assert shared_dir(tmp_path / "clone") == elsewhere


def test_no_shared_dir_is_never_a_silent_skip_in_ci(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("METRICSKIT_SHARED_DIR", raising=False)
    with pytest.raises(_outcome(mode), match="METRICSKIT_SHARED_DIR"):
        shared_dir(tmp_path / "clone")
    monkeypatch.setenv("METRICSKIT_SHARED_DIR", str(tmp_path))
    with pytest.raises(_outcome(mode), match="has no"):
        shared_dir(tmp_path / "clone")


def test_no_test_skips_around_the_rule() -> None:
    # pytest.importorskip and a bare pytest.skip skip even in CI; all go through missing()
    offenders = []
    for folder in (ROOT / "tests", *ROOT.glob("backends/*/tests"), *ROOT.glob("examples/*/tests")):
        for path in folder.rglob("*.py"):
            if path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(
                    r"importorskip\(|pytest\.skip\(|mark\.skipif|os\.environ.get\(.METRICSKIT_REQUIRE",
                    line,
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
