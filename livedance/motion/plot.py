"""Matplotlib drawing of skeletons and point sets (for reports and debugging).

Axes mapping: livedance positions are y-up right-handed (x, y, z); matplotlib's 3D axes are z-up.
:func:`to_plot_axes` maps (x, y, z) -> (x, -z, y), a proper rotation, so nothing is mirrored; with
:data:`FRONT_VIEW` the camera looks at a character that faces +z, and its left side (+x) appears on the
viewer's right, as when facing a person.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: ``ax.view_init`` arguments for a front view of a character facing +z.
FRONT_VIEW = {"elev": 12.0, "azim": -70.0}


def to_plot_axes(points: np.ndarray) -> np.ndarray:
    """(..., 3) y-up points -> (..., 3) matplotlib z-up coordinates ``(x, -z, y)``."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def side_colours(
    names: Sequence[str], left: str = "tab:blue", right: str = "tab:red", centre: str = "0.2"
) -> list[str]:
    """One colour per name: ``left`` for names starting with "left", ``right`` for "right", else ``centre``."""
    return [left if n.startswith("left") else right if n.startswith("right") else centre for n in names]


def draw_edges(ax, points: np.ndarray, edges: Sequence[tuple[int, int]], colours: Sequence[str], **kw) -> None:
    """Draw (N, 3) y-up ``points`` as dots plus line segments ``edges`` on a 3D axis.

    ``colours`` has one entry per point; a segment takes its second point's colour.
    """
    p = to_plot_axes(points)
    for a, b in edges:
        ax.plot(*zip(p[a], p[b]), color=colours[b], lw=kw.get("lw", 2.0))
    ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=list(colours), s=kw.get("s", 10), depthshade=False)


def draw_skeleton(ax, positions: np.ndarray, parents: Sequence[int], names: Sequence[str], **kw) -> None:
    """Draw joint ``positions`` (J, 3) y-up metres of a tree given by ``parents``, left blue / right red."""
    edges = [(p, j) for j, p in enumerate(parents) if p >= 0]
    draw_edges(ax, positions, edges, side_colours(names), **kw)


def set_equal_box(ax, points: np.ndarray, pad: float = 0.1) -> None:
    """Give the 3D axis equal scales around the (N, 3) y-up ``points`` (metres), with ``pad`` metres."""
    p = to_plot_axes(points).reshape(-1, 3)
    centre = 0.5 * (p.max(0) + p.min(0))
    half = 0.5 * float((p.max(0) - p.min(0)).max()) + pad
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1))
