"""lopcore: reproducible loss-of-plasticity experiments (Iqbal; Dohare et al.; Khan et al.).

Layers, lowest first (imports point down only; tests/test_imports.py fails on any cycle):
    data, tasks, sequences, learners, metrics  ->  spec, device, store (<- checkpoint)  ->  engine,
    frames, blocks  ->  units, backends  ->  study (what the papers share: scales, loading runs,
    claims, statistics over seeds, the collapse definition, plotting primitives)  ->  papers.iqbal
    (figures, claims, plotting, boundary), papers.khan (figures, claims, plotting), papers.dohare
    (figures, claims, plotting); papers.PAPERS lists their figure modules  ->  sweep  ->  cli,
    bench, notebooks
"""

__version__ = "0.1.0"
