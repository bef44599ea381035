"""The report's sections from what a run holds: a search-only run shows its front, its network and the
live-view command, and says which parts it does not have."""

import re

from mobileseg.report.run_folder import open_run
from mobileseg.report.sections import report_html


def section(page, anchor):
    return re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S).group(1)


def test_a_search_only_run_shows_its_front_and_network_and_names_what_it_lacks(searched_run):
    run = open_run(searched_run)
    page = report_html(run, samples=2)
    pareto = section(page, "pareto")
    assert pareto.count('<img class="figure" alt="Pareto plot" src="data:image/png;base64,') == 1
    chosen = run.pareto["chosen"]["trial"]
    assert re.search(rf'<tr class="chosen"><td class="num">{chosen}</td>', pareto)
    assert pareto.count("<tr>") == 1 + len(run.pareto["front"]) - 1  # heading row and the other front rows
    assert f"optuna-dashboard sqlite:///{(searched_run / 'study.db').resolve()}" in pareto
    assert "<svg" in section(page, "network") and run.genotype.name in page
    for anchor in ("accuracy", "samples", "latency", "export"):
        assert "Not in this run" in section(page, anchor), anchor
    assert "Not in this run" not in section(page, "pareto") + section(page, "network")
