"""Placeholder until Orders v2 lands this session."""

from starlette.routing import Route

routes: list[Route] = []
