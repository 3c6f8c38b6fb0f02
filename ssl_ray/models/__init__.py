"""Backbones (registry), projector heads and the tapped SSL model. No ray, no mlflow."""

from ssl_ray.models.backbones import BACKBONES, build_backbone
from ssl_ray.models.export import load_backbone
from ssl_ray.models.heads import Projector
from ssl_ray.models.ssl_model import SSLModel, build_model

__all__ = ["BACKBONES", "build_backbone", "load_backbone", "Projector", "SSLModel", "build_model"]
