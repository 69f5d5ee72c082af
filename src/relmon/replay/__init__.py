"""Replays: the engine over recorded events, without Kafka (files) or from Kafka later."""

# how --since/--until are written (here, not in kafka_source, so that `relmon replay --help`
# and a file replay do not import the Kafka client)
TIME_HELP = "RFC 3339 (2026-03-01T00:00:00Z) or a date (2026-03-01 = midnight UTC)"

from relmon.replay.file_replay import Replayer, ReplayStats, replay_file  # noqa: E402

__all__ = ["TIME_HELP", "ReplayStats", "Replayer", "replay_file"]
