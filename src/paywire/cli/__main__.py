"""`python -m paywire.cli`: the `paywire` command without its console script."""

from paywire.cli import main

main()
