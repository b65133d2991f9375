"""GenDR, the generalized differentiable renderer (Petersen et al., CVPR 2022, arXiv 2204.13845),
in pure PyTorch: smoothing distributions × T-conorms, a binned rasteriser, colour blending,
lighting, mesh regularisers, and camera-pose and shape fitting."""

from quintet.render.camera import get_points_from_angles, look, look_at, perspective, project
from quintet.render.distributions import (
    DISTRIBUTIONS,
    cdf,
    coverage,
    cutoff_distance,
    get_distribution,
)
from quintet.render.experiments import PoseConfig, ShapeConfig, fit_pose, fit_shape, iou_loss
from quintet.render.mesh import Mesh, face_vertices, load_mesh
from quintet.render.modules import GenDR
from quintet.render.rasterize import (
    RenderSettings,
    pixel_centers,
    render,
    render_dense,
    signed_distance,
)
from quintet.render.shading import face_normals, flatten_loss, laplacian_loss, lighting
from quintet.render.tconorms import TCONORMS, tconorm

__all__ = [
    "DISTRIBUTIONS",
    "GenDR",
    "Mesh",
    "PoseConfig",
    "RenderSettings",
    "ShapeConfig",
    "TCONORMS",
    "cdf",
    "coverage",
    "cutoff_distance",
    "face_normals",
    "face_vertices",
    "fit_pose",
    "fit_shape",
    "flatten_loss",
    "get_distribution",
    "get_points_from_angles",
    "iou_loss",
    "laplacian_loss",
    "lighting",
    "load_mesh",
    "look",
    "look_at",
    "perspective",
    "pixel_centers",
    "project",
    "render",
    "render_dense",
    "signed_distance",
    "tconorm",
]
