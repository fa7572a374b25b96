"""The example notebooks execute without errors and are committed without outputs."""

from __future__ import annotations

import nbformat
import pytest

from tests.helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"


def test_rest_tools_notebook_runs(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / "01_rest_tools.ipynb"
    db = tmp_path / "notebook.db"
    # The kernel inherits the environment: the notebook must use this throwaway database, not the repo's.
    monkeypatch.setenv("MCPGW_DATABASE_URL", f"sqlite:///{db}")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    text = _outputs_text(nb)
    assert "NOTEBOOK-OK 3 2 GATEWAY-OK" in text, text[-2000:]
    assert "problems: none" in text
    assert db.exists(), "the notebook did not use MCPGW_DATABASE_URL"
    assert not (tmp_path / "mcpgw.db").exists()
    html = [o["data"]["text/html"] for c in nb.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert any("get_user" in h and "email" in h for h in html), "the tools did not display as HTML"


def test_dev_extra_installs_what_runs_and_converts_notebooks(tmp_path):
    import configparser
    import subprocess
    import sys

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    dev = {line.split(">")[0].split("=")[0].split("[")[0].strip()
           for line in config["options.extras_require"]["dev"].splitlines() if line.strip()}
    assert {"nbclient", "ipykernel", "nbconvert", "notebook"} <= dev, dev
    path = ROOT / "notebooks" / "01_rest_tools.ipynb"
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "script", "--output-dir",
                           str(tmp_path), str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # .py, or .txt when the notebook (committed without outputs) names no language
    [script] = tmp_path.glob("01_rest_tools.*")
    assert "import mcpgw_sdk" in script.read_text()
    front = subprocess.run([sys.executable, "-m", "notebook", "--version"], capture_output=True, text=True,
                           timeout=60)
    assert front.returncode == 0 and front.stdout.strip()[0].isdigit(), front.stderr
