"""lopcore: reproducible loss-of-plasticity experiments (Iqbal; Dohare et al.; Khan et al.).

Layers, lowest first (imports point down only; tests/test_imports.py fails on any cycle):
    data, tasks, sequences, learners, metrics  ->  spec, device, store (<- checkpoint)  ->  engine,
    frames, blocks  ->  units, backends  ->  figures (+ plotting, claims), boundary, sweep  ->  cli,
    bench, notebooks
"""

__version__ = "0.1.0"
