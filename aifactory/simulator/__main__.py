"""``python -m aifactory.simulator [options]``: run the inference simulator."""

from aifactory.simulator.cli import main

if __name__ == "__main__":
    main()
