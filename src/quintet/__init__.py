"""quintet: five machine-learning papers as tested, fast PyTorch tools."""

__version__ = "0.1.0"
__all__ = ["__version__"]
