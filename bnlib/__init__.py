"""bnlib: models, data, training loop and probes for the book on Santurkar et al. (2018).

Its modules form layers, bottom to top. An import only ever points down or within its layer, and there is no
import cycle (`tests/test_layers.py` builds the import graph from the source and checks both):

1. validators: checks
2. foundations: store, paper, losses, execution, record, theory, widgets, colab
3. scales, data and models (and the paper's formulas, beside them): profiles, data, models, formulas
4. probes: probes
5. the loop: checkpoint, dln_step, train
6. the run cache: pool, runs
7. the cost meter: plan
8. statistics shared by experiments, claims and plots: stats
9. experiments (which runs a figure needs): experiments
10. claims (graders: they take runs, never fetch them) and their stability across machines: claims, stability
11. plots, tables and reports: plots, tables, report
12. the chapter registry (what chapter N is; the profile resolved once): book

A package's name stands for all its modules. The `python -m` entry points (`claims/__main__.py`) sit above
every layer: nothing imports them.
"""

__version__ = "0.2.0"
