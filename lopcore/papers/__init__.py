"""One subpackage per paper, each built on the shared `lopcore.study`:

    iqbal   Iqbal, persistent internal state (fig*, cbp_sweep), and the collapse boundary on its
            protocol (boundary: sensitivity, boundary)
    khan    Khan et al., "Loss of Plasticity in Recurrent Models" (rfig*)
    dohare  Dohare's online permuted MNIST study (dfig_*)

Every figures module (PAPERS) exposes the same names: FIGURES, SCALES, DEFAULT_SEEDS, figure_runs,
load_figure and summary (the table `lopcore run` prints); every claims module, figure_claims.
"""

from .dohare import figures as dohare_figures
from .iqbal import boundary
from .iqbal import figures as iqbal_figures
from .khan import figures as khan_figures

# the figure modules, in the order `lopcore figures` lists them
PAPERS = (iqbal_figures, boundary, khan_figures, dohare_figures)
