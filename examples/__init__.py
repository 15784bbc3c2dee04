"""Example shops that embed paywire (each runs with one command; see the README's "Embedding
paywire" section). Their tests run in paywire's own suite (`make test`)."""
