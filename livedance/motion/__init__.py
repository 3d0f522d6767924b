"""livedance.motion: skeletons (SMPL-X 55, SMPL 24), rotation conversions, forward kinematics.

Submodules: :mod:`~livedance.motion.skeleton`, :mod:`~livedance.motion.rotations`,
:mod:`~livedance.motion.fk`, and the optional :mod:`~livedance.motion.smplx_model` (needs the user's
licensed SMPL-X files; never imported by the others).
"""
