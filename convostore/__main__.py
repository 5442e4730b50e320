"""`python -m convostore` runs the CLI."""

from .cli import main

main()
