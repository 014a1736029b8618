"""``python -m bench``: the CLI, so ``accelerate launch -m bench run ...`` works."""

from bench.cli import main

if __name__ == "__main__":
    main()
