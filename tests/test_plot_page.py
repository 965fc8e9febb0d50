"""`dvc plots show` with the committed .dvc/config: the page loads Vega from .vega/, else the CDN."""
import re
import shutil

from dvc_render.vega import VegaRenderer

from tests.helpers import REPO, init_dvc_repo, run

TEMPLATE = "hybrid_ir/plot_templates/page.html"


def _libs(page: str) -> list[tuple[str, str]]:
    return re.findall(r'\["(vega[a-z-]*)", "([0-9.]+)"\]', page)


def test_dvc_plots_show_writes_a_page_that_loads_the_local_vega(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    env = init_dvc_repo(root)
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")  # plots.html_template, as committed
    (root / TEMPLATE).parent.mkdir(parents=True)
    shutil.copy(REPO / TEMPLATE, root / TEMPLATE)
    (root / "loss.csv").write_text("step,loss\n0,1.0\n1,0.5\n")
    (root / "dvc.yaml").write_text("plots:\n  - loss.csv:\n      x: step\n      y: loss\n")
    run(["dvc", "plots", "show"], root, env)  # from the repository root, into dvc_plots/
    index = root / "dvc_plots" / "index.html"
    page = index.read_text()
    assert "vegaEmbed('#loss_csv', spec)" in page and "{plot_divs}" not in page
    assert "<script src=" not in page  # none of DVC's CDN tags
    local = re.search(r'var local = "([^"]+)"', page).group(1)
    libs = _libs(page)
    assert [name for name, _ in libs] == ["vega", "vega-lite", "vega-embed"]
    # the files `make plots-offline` writes, seen from the page
    for name, _ in libs:
        assert (index.parent / local / f"{name}.min.js").resolve() == (root / ".vega" / f"{name}.min.js").resolve()
    # the CDN fallback and `make plots-offline` fetch the versions dvc-render's own page loads
    assert set(libs) == set(re.findall(r"npm/(vega[a-z-]*)@([0-9.]+)", VegaRenderer.SCRIPTS))
    makefile = (REPO / "Makefile").read_text()
    assert set(libs) == set(re.findall(r"(vega[a-z-]*)@([0-9.]+)", re.search(r"^VEGA := (.*)$", makefile, re.M)[1]))
