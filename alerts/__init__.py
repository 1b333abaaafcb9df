"""alerts package."""

__all__: list[str] = []
