"""Content items: catalogue items and trainers' own, media uploads, premium gating."""
