"""Workout execution: sessions, logged sets, summaries, streaks and achievements."""
