"""Batched forward kinematics over a kinematic tree (numpy and torch).

Given local (parent-relative) joint rotations ``R_j``, a root translation ``t`` and rest offsets
``o_j`` (offset of joint j from its parent in the rest pose; ``o_0`` = rest position of the root),
the global rotations and positions are (the standard skinning-free FK of SMPL, Loper et al. 2015,
Eq. 3-4, without blend shapes):

    G_0 = R_0,               p_0 = t + o_0
    G_j = G_parent(j) R_j,   p_j = p_parent(j) + G_parent(j) o_j

so ``t = 0`` and all ``R_j = I`` reproduce the rest pose, and ``t`` is the displacement of the root
from its rest position (the SMPL/SMPL-X ``transl`` parameter).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from livedance.errors import DataError


def _check_shapes(rot_shape, trans_shape, off_shape, parents: Sequence[int]) -> None:
    J = len(parents)
    if len(rot_shape) < 3 or tuple(rot_shape[-3:]) != (J, 3, 3):
        raise DataError(f"forward kinematics: local rotations have shape {tuple(rot_shape)}, expected (..., {J}, 3, 3)")
    if tuple(trans_shape) != tuple(rot_shape[:-3]) + (3,):
        raise DataError(
            f"forward kinematics: root translation has shape {tuple(trans_shape)}, "
            f"expected {tuple(rot_shape[:-3]) + (3,)}"
        )
    if tuple(off_shape) != (J, 3):
        raise DataError(f"forward kinematics: rest offsets have shape {tuple(off_shape)}, expected ({J}, 3)")
    for j, p in enumerate(parents):
        if p >= j:
            raise DataError(f"forward kinematics: parent {p} of joint {j} does not precede it; expected parents[j] < j")


def _fk_chain(local_rotmats, root_translation, rest_offsets, parents: Sequence[int]) -> tuple[list, list]:
    """The recurrence of the module docstring, on numpy arrays or torch tensors alike (both broadcast
    ``(..., 3, 3) @ (3,)``). Returns per-joint lists of global rotations (..., 3, 3) and positions (..., 3)."""
    g_rot: list = [None] * len(parents)
    g_pos: list = [None] * len(parents)
    for j, p in enumerate(parents):
        if p < 0:
            g_rot[j] = local_rotmats[..., j, :, :]
            g_pos[j] = root_translation + rest_offsets[j]
        else:
            g_rot[j] = g_rot[p] @ local_rotmats[..., j, :, :]
            g_pos[j] = g_pos[p] + g_rot[p] @ rest_offsets[j]
    return g_rot, g_pos


def fk_np(
    local_rotmats: np.ndarray,
    root_translation: np.ndarray,
    rest_offsets: np.ndarray,
    parents: Sequence[int],
    return_global_rotmats: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Forward kinematics in numpy.

    Args:
        local_rotmats: (..., J, 3, 3) float, parent-relative rotations (the root's is global).
        root_translation: (..., 3) float metres, root displacement from its rest position.
        rest_offsets: (J, 3) float metres (see module docstring).
        parents: length-J parent indices, ``parents[0] == -1``, ``parents[j] < j``.
        return_global_rotmats: also return the (..., J, 3, 3) global rotations.
    Returns:
        positions (..., J, 3) in the dtype of ``local_rotmats`` (and global rotations if asked).
    Raises:
        DataError: on mismatched shapes, or a parent that does not precede its child.
    """
    local_rotmats = np.asarray(local_rotmats)
    root_translation = np.asarray(root_translation)
    rest_offsets = np.asarray(rest_offsets, dtype=local_rotmats.dtype)
    _check_shapes(local_rotmats.shape, root_translation.shape, rest_offsets.shape, parents)
    g_rot, g_pos = _fk_chain(local_rotmats, root_translation, rest_offsets, parents)
    pos = np.stack(g_pos, axis=-2).astype(local_rotmats.dtype, copy=False)
    if return_global_rotmats:
        return pos, np.stack(g_rot, axis=-3)
    return pos


def fk_torch(
    local_rotmats: torch.Tensor,
    root_translation: torch.Tensor,
    rest_offsets: torch.Tensor,
    parents: Sequence[int],
    return_global_rotmats: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics in torch (differentiable); same contract as :func:`fk_np`.

    ``rest_offsets`` may be a numpy array; it is moved to the rotations' dtype and device.
    """
    rest_offsets = torch.as_tensor(rest_offsets, dtype=local_rotmats.dtype, device=local_rotmats.device)
    _check_shapes(local_rotmats.shape, root_translation.shape, rest_offsets.shape, parents)
    g_rot, g_pos = _fk_chain(local_rotmats, root_translation, rest_offsets, parents)
    pos = torch.stack(g_pos, dim=-2)
    if return_global_rotmats:
        return pos, torch.stack(g_rot, dim=-3)
    return pos


def forward_kinematics(local_rotmats, root_translation, rest_offsets, parents, return_global_rotmats=False):
    """Dispatch to :func:`fk_torch` for torch tensors and to :func:`fk_np` otherwise (same arguments,
    shapes and errors)."""
    if isinstance(local_rotmats, torch.Tensor):
        return fk_torch(local_rotmats, root_translation, rest_offsets, parents, return_global_rotmats)
    return fk_np(local_rotmats, root_translation, rest_offsets, parents, return_global_rotmats)


def global_to_local_np(global_rotmats: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Inverse of the rotation part of FK: (..., J, 3, 3) global -> local, ``R_j = G_p^T G_j``."""
    g = np.asarray(global_rotmats)
    local = np.empty_like(g)
    for j, p in enumerate(parents):
        local[..., j, :, :] = g[..., j, :, :] if p < 0 else np.swapaxes(g[..., p, :, :], -1, -2) @ g[..., j, :, :]
    return local
