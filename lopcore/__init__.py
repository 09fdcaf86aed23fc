"""lopcore: reproducible loss-of-plasticity experiments (Iqbal; Dohare et al.; Khan et al.).

Layers, lowest first (imports point down only):
    data, tasks, learners, metrics  ->  engine (+ store)  ->  units, backends  ->  figures, sweep
    ->  plotting, cli, notebooks
"""

__version__ = "0.1.0"
