"""`python -m colorize` (and `torchrun -m colorize train ...`) run the same CLI as the console script."""

from colorize.cli import main

if __name__ == "__main__":
    main()
