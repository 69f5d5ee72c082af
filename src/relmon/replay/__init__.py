"""Replays: the engine over recorded events, without Kafka (files) or from Kafka later."""

from relmon.replay.file_replay import Replayer, ReplayStats, replay_file

__all__ = ["ReplayStats", "Replayer", "replay_file"]
