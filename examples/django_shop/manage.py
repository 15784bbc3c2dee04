#!/usr/bin/env python
"""The sample shop's manage.py: `python examples/django_shop/manage.py shop_demo` runs it."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
