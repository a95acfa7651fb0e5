"""The paper's Figures 1-7, one module each: ``fig3.py`` holds Figure 3's whole
definition — its settings with their reasons (``SPEC``), the paper's caption
(``CAPTION``), the neurons it needs (``inputs``), how its arrays are computed
(``compute``), how they are drawn (``draw``) and the line of this run's numbers under it
(``notes``) — gathered in its ``FIGURE`` record (:class:`PaperFigure`).

What several figures share has a module of its own: :mod:`.common` (layer mapping, the
most selective neurons, the visualiser call, and why each learning rate), :mod:`.drawing`
(tiles, text, bars, a figure's bytes), :mod:`.grid` (Figures 4 and 5),
:mod:`.selected` (Figures 6 and 7). :mod:`.methods` draws the report's figure beyond the
paper. ``reproduce`` walks :data:`FIGURES` in order; nothing else knows a figure by name.
"""

from . import fig1, fig2, fig3, fig4, fig5, fig6, fig7
from .drawing import figure_bytes
from .record import PaperFigure, value_range

#: the paper's figures in order, by name ("fig1" ... "fig7")
FIGURES: dict[str, PaperFigure] = {m.FIGURE.name: m.FIGURE
                                   for m in (fig1, fig2, fig3, fig4, fig5, fig6, fig7)}

__all__ = ["FIGURES", "PaperFigure", "figure_bytes", "value_range"]
