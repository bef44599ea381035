"""Genotypes of the networks a committed result names, kept next to it (issue 23).

A run folder (``runs/``) is not committed, so a result that names ``runs/.../arch.yaml``
cannot be rebuilt. Every benchmark that trains or reports a searched network copies its
genotype to ``benchmarks/results/genotypes/BENCHMARK/NAME.yaml`` and names that path
(relative to the repository) in its JSON, with the network's composition at a glance.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENOTYPES = ROOT / "benchmarks" / "results" / "genotypes"


def keep(genotype, benchmark: str, name: str, folder: Path | None = None) -> dict:
    """Write ``genotype`` (a `Genotype`, a genotype dict or a genotype file) as ``FOLDER/BENCHMARK/NAME.yaml``.

    ``folder`` (default `GENOTYPES`) is another place, for a result written elsewhere (a smoke run's
    ``--out`` outside the repository), so that it never overwrites the committed genotypes.

    Returns:
        ``{"genotype": its path, relative to the repository when inside it, "composition": ops per branch}``.
    """
    from mobileseg.arch import schema_io
    from mobileseg.arch.composition import composition
    from mobileseg.arch.genotype import Genotype

    if isinstance(genotype, dict):
        genotype = schema_io.from_dict(genotype, source=f"{benchmark}/{name}")
    elif not isinstance(genotype, Genotype):
        genotype = schema_io.load(genotype)
    path = Path(folder or GENOTYPES) / benchmark / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    schema_io.dump(genotype, path)
    return {"genotype": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
            "composition": composition(genotype)}
