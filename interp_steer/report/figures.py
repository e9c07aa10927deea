"""Figures as PNG bytes for the HTML cards (the figure is closed afterwards)."""

from __future__ import annotations


def figure_png(fig, dpi: int = 110) -> bytes:
    """``fig`` rendered as PNG bytes (tight bounding box), then closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
