"""ssl_ray: reverse-engineering self-supervised learning with Ray Train, Ray Tune and MLflow."""

__version__ = "0.1.0"
