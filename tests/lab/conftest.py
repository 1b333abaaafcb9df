"""Fixtures of tests/lab: the seed is proven by logging in to the real web app."""

from tests.web.conftest import server

__all__ = ["server"]
