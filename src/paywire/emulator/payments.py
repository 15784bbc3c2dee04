"""Placeholder route list: filled in by its module's owner this session."""

from starlette.routing import Route

routes: list[Route] = []
