"""The run report: one self-contained HTML page of a run folder (``python -m mobileseg.report``).

`run_folder` reads what the folder holds, `quality` evaluates its models, `latency_breakdown`
splits the predicted latency by block, `genotype_svg` draws the network, `figures` draws the
raster figures, `sections` builds each part of the page and `html_page` the page itself, written to
``DIR/report.html`` (`mobileseg.run.run_dir.RunDir.REPORT_HTML`).
"""
