"""Voxel data: the embedded procedural shapes, 3D ShapeNets trees and voxel files, as bool arrays."""

from voxgan.data.dataset import VoxelDataset, load_dataset

__all__ = ["VoxelDataset", "load_dataset"]
