"""`make run`: the main job on a developer machine.

Until the worker lands this only checks that the broker answers and the topics exist, then
says what is there; it grows into broker + worker + simulated stream.
"""

from __future__ import annotations

import sys

from relmon.settings import Settings


def main() -> int:
    settings = Settings()
    print(f"relmon: Kafka broker at {settings.kafka_bootstrap}, topics created.")
    print("relmon: stop the broker with `make broker-stop`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
