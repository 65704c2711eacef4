"""Local images for the docker runtime (no registry is reachable): see :mod:`.bootstrap`.

    from harness.images import bootstrap_images
    names = bootstrap_images()          # {"PYTHON_BASE_IMAGE": "cost-harness/python:3.11", ...}
"""

from harness.images.bootstrap import bootstrap_images, images_env_path, load_images_env

__all__ = ["bootstrap_images", "images_env_path", "load_images_env"]
