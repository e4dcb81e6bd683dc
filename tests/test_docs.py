"""The documentation site builds, and its reference pages cannot drift from the code.

- ``mkdocs build --strict`` (broken links, missing pages, pages missing from the nav and
  unknown anchors fail it; see ``mkdocs.yml``). Skips without mkdocs unless
  ``METRICSKIT_REQUIRE_SERVICES=1``.
- docs/configuration.md has a row for every key the config loader accepts (every
  section is a pydantic model), and every default shown in backticks is the model's
  real default.
- docs/cli.md has a section for every command of ``metricskit.cli.commands.cli`` that names every
  option and argument.
- Every ```python block of README.md and docs/*.md runs: each page's blocks in order, as
  one script in a fresh process and an empty directory holding the example
  ``config/monitoring.yaml``. A block that cannot run says why in an HTML comment on the
  line before its fence: ``<!-- not-run: reason -->``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from pydantic import BaseModel

from metricskit.alerting.rules_model import AlertRule, RecordingRule, RuleSet
from metricskit.cli.commands import cli
from metricskit.collect.sources.config import METRIC_GROUPS
from metricskit.config import SECTIONS, MonitoringConfig
from metricskit.errors import ConfigError
from tests.services import require_module

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


# -- the site builds ------------------------------------------------------------------


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    require_module("mkdocs", "pip install mkdocs")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", site],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for page in ("index", "configuration", "cli", "writing-a-backend", "operations"):
        assert (site / page / "index.html").is_file() or (site / f"{page}.html").is_file()


# -- configuration.md -----------------------------------------------------------------

_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|([^|]*)\|([^|]*)\|(.*)\|\s*$")


def _rows(page: str) -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in (DOCS / page).read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            key, type_, default, meaning = (g.strip() for g in match.groups())
            rows[key] = (type_, default, meaning)
    return rows


def _submodel(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The pydantic model a field holds (directly, optionally, or as dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    is_dict = typing.get_origin(annotation) is dict
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, is_dict
    return None, False


def _fields(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any, bool]]:
    """``(dotted path, default, is a nested model)`` for every field, recursively."""
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}"
        sub, in_dict = _submodel(field.annotation)
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        yield (
            path,
            ("required" if field.is_required() else default),
            sub is not None and (not in_dict),
        )
        if sub is not None:
            yield from _fields(sub, f"{path}.<name>" if in_dict else path)


def _config_models() -> dict[str, type[BaseModel]]:
    hints = typing.get_type_hints(MonitoringConfig)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(MonitoringConfig)
        if isinstance(hints[f.name], type)
        and issubclass(hints[f.name], BaseModel)
        and hints[f.name] is not RuleSet  # alerts and recording: walked below, per rule
    }


def _all_model_fields() -> list[tuple[str, Any, bool]]:
    found = []
    for section, model in _config_models().items():
        found += _fields(model, section)
    found += _fields(AlertRule, "alerts.<group>.<rule>")
    found += _fields(RecordingRule, "recording.<group>.<rule>")
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def test_every_section_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"\n## {section}\n" in text, f"no '## {section}' heading in configuration.md"


def test_model_walk_sees_every_section() -> None:
    # guards the walk itself: if MonitoringConfig changes shape, the drift test must not
    # silently check nothing
    assert set(_config_models()) == {
        "collection",
        "notifications",
        "storage",
        "dashboard",
        "performance",
        "integrations",
        "debug",
        "health_checks",
        "service",
    }
    assert len(_all_model_fields()) > 100


def test_every_model_field_has_a_row_with_its_default() -> None:
    rows = _rows("configuration.md")
    problems = []
    for path, default, nested in _all_model_fields():
        if nested:
            # an optional mapping (a notification channel) says what leaving it out means
            if default is None and path not in rows:
                problems.append(f"{path}: no row for this optional mapping")
            continue  # its own keys have the rows with defaults
        if path not in rows:
            problems.append(f"{path}: no row")
            continue
        type_, shown, meaning = rows[path]
        if not type_ or not meaning:
            problems.append(f"{path}: empty type or meaning")
        if default == "required":
            if shown != "required":
                problems.append(f"{path}: is required, the page says {shown!r}")
        elif shown.startswith("`") and shown.endswith("`"):
            documented = yaml.safe_load(shown[1:-1])
            if _plain(documented) != _plain(default):
                problems.append(f"{path}: default is {default!r}, the page says {shown}")
        elif not isinstance(default, (dict, list, tuple)) or not default:
            problems.append(f"{path}: a scalar default must be shown in backticks: {shown!r}")
    assert not problems, "\n".join(problems)


def test_collection_groups_have_rows() -> None:
    rows = _rows("configuration.md")
    for group, names in METRIC_GROUPS.items():
        _type, _default, meaning = rows[f"collection.enabled_metrics.{group}"]
        for name, metrics in names.items():
            assert f"`{name}`" in meaning, f"{group}: {name}"
            assert all(f"`{m}`" in meaning for m in metrics), f"{group}: {metrics}"


def test_no_row_documents_a_key_that_does_not_exist() -> None:
    rows = _rows("configuration.md")
    real = {path for path, _default, _nested in _all_model_fields()}
    stale = sorted(set(rows) - real)
    assert not stale, f"rows for keys the loader does not know: {stale}"


def test_default_dashboard_sections_are_named_as_in_the_code() -> None:
    from metricskit.catalog import DEFAULT_DASHBOARD_SECTIONS

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    sentence = text.split("The default sections are ", 1)[1].split("(", 1)[0]
    assert re.findall(r"`([^`]+)`", sentence) == list(DEFAULT_DASHBOARD_SECTIONS)


def test_config_sections_read_as_documented() -> None:
    # docs/collection.md and notifications.md index the config like the seed's YAML dict
    from metricskit.config import UnknownSectionError, load_config

    config = load_config(text="collection: {interval_seconds: 30}\nstorage: {type: memory}")
    assert config["collection"] is config.collection
    assert config["notifications"] is config.notifications
    assert config["storage"] is config.storage
    assert config["alerts"] == config.rules.alerts
    for section in SECTIONS:
        config[section]  # every section the loader accepts can be read so
    with pytest.raises(UnknownSectionError, match="did you mean 'alerts'") as caught:
        config["alert"]
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, ConfigError)


# -- cli.md ---------------------------------------------------------------------------


def _commands(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


def _cli_sections() -> dict[str, str]:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parts = re.split(r"^#{2,3} `(metricskit[^`]*)`\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_cli_command_option_and_argument_is_documented() -> None:
    sections = _cli_sections()
    problems = []
    commands = list(_commands(cli, ("metricskit",)))
    assert len(commands) > 15
    for path, command in commands:
        body = sections.get(path)
        if body is None:
            problems.append(f"{path}: no '### `{path}`' section")
            continue
        for param in command.params:
            if isinstance(param, click.Option):
                names = [*param.opts, *param.secondary_opts]
                problems += [f"{path}: {n}" for n in names if f"`{n}" not in body]
            else:
                metavar = (param.name or "").upper()
                if f"`{metavar}`" not in body:
                    problems.append(f"{path}: argument {metavar}")
    root = sections.get("metricskit", "")
    for name in click.Context(cli).help_option_names:
        if f"`{name}`" not in root:
            problems.append(f"metricskit: {name}")
    assert not problems, "\n".join(problems)


def test_cli_page_documents_no_command_that_does_not_exist() -> None:
    real = {path for path, _command in _commands(cli, ("metricskit",))}
    stale = sorted(set(_cli_sections()) - real)
    assert not stale, stale


# -- user-guide.md runs ---------------------------------------------------------------


def test_user_guide_python_blocks_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (DOCS / "user-guide.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "user_guide"}
    for number, block in enumerate(blocks):
        exec(compile(block, f"docs/user-guide.md python block {number}", "exec"), namespace)
    # what the guide's prose says happens
    assert namespace["report"].overall_status == "critical"
    assert namespace["data"]["overall_status"] == "critical"
    assert "[FIRING critical] rule=system.high_cpu" in (tmp_path / "alerts.log").read_text()
    assert (tmp_path / "dashboard.html").stat().st_size > 0
    assert "pending" in capsys.readouterr().out


def test_configuration_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from metricskit.config import load_config

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    example = text.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.example.com/services/T/B/x")
    config = load_config(text=example)
    assert [rule.name for rule in config.rules.alerts] == ["system.high_cpu"]
    assert config.integrations.prometheus.port == 9464


# -- every python block runs -----------------------------------------------------------

_FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(\S.*?)\s*-->\s*$")
# blocks checked by a test of their own, with what the prose says they print
_OWN_TEST = {"user-guide.md": "test_user_guide_python_blocks_run_in_order"}

_RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for path, line, code in json.load(open(sys.argv[1])):
    # padded so a traceback names the page and the line in it
    exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
"""


@dataclasses.dataclass(frozen=True)
class Block:
    """One ```python block: where it is, its code, and why it does not run (if marked)."""

    page: Path
    line: int  # of its first code line
    code: str
    not_run: str | None


def python_blocks(page: Path) -> list[Block]:
    """Every ```python block of a page, in order."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _NOT_RUN.search(before)
        line = text.count("\n", 0, match.start()) + 2
        blocks.append(Block(page, line, match.group(1), marker.group(1) if marker else None))
    return blocks


def _run_pages() -> list[Path]:
    return [p for p in PAGES if python_blocks(p) and p.name not in _OWN_TEST]


@pytest.mark.parametrize("page", _run_pages(), ids=lambda p: p.name)
def test_page_python_blocks_run(page: Path, tmp_path: Path) -> None:
    blocks = [b for b in python_blocks(page) if b.not_run is None]
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "monitoring.yaml").write_bytes(
        (ROOT / "examples" / "monitoring.yaml").read_bytes()
    )
    script = tmp_path.parent / f"{tmp_path.name}-blocks.json"
    script.write_text(json.dumps([(str(b.page.relative_to(ROOT)), b.line, b.code) for b in blocks]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRICSKIT_CONFIG")}
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"{page.name}:\n{done.stdout[-2000:]}\n{done.stderr[-6000:]}"


def test_block_extraction_and_the_not_run_marker(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\na = 1\n```\n\n<!-- not-run: needs a GPU -->\n```python\nb = 2\n```\n"
        "\n```bash\nls\n```\n"
    )
    first, second = python_blocks(page)
    assert (first.line, first.code, first.not_run) == (4, "a = 1\n", None)
    assert (second.line, second.code, second.not_run) == (9, "b = 2\n", "needs a GPU")


def test_every_python_block_is_run_or_says_why_not() -> None:
    blocks = [b for p in PAGES for b in python_blocks(p)]
    assert len(blocks) >= 30  # the extraction itself works
    skipped = [f"{b.page.name}:{b.line}: {b.not_run}" for b in blocks if b.not_run]
    # deliberately unrunnable blocks are rare; each names its reason
    assert len(skipped) <= 3, skipped
    for page in PAGES:
        if page.name in _OWN_TEST:
            assert _OWN_TEST[page.name] in globals()
    # a python block must be fenced as such to be run: no untagged code fences of Python
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        untagged = re.findall(r"^```\n(?:import |from \w+ import )", text, flags=re.MULTILINE)
        assert not untagged, f"{page.name}: a Python block fenced without 'python'"
