"""Demo shop and admin dashboard (templates and static files)."""
