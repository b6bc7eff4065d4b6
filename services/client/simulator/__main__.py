"""``python -m services.client.simulator [options]``: run the inference simulator."""

from services.client.simulator.cli import main

if __name__ == "__main__":
    main()
