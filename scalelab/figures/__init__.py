"""Paper-style figures (Fig. 1, 6, 7, 8 and the batch-size study) from runs and fits.

Every figure is a function of the `scalelab.load_runs` DataFrame and the dict of
`scalelab.analysis.fit_scaling`, and returns a matplotlib Figure to restyle or save.
"""

from scalelab.figures.allocation import fig8
from scalelab.figures.batch_size import batch_size_figure
from scalelab.figures.bottleneck import fig7
from scalelab.figures.compute import fig1, fig6
from scalelab.figures.save import save_figure

__all__ = ["batch_size_figure", "fig1", "fig6", "fig7", "fig8", "save_figure"]
