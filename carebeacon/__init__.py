"""CareBeacon: the console entry point, configuration and the project's own services."""

__all__ = ["__version__"]

__version__ = "0.1.0"
