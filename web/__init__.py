"""web package."""

__all__: list[str] = []
