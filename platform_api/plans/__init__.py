"""Trainers, workout plans and enrollments."""
